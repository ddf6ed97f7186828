"""SMN signatures (consumer.ingress.smn): the real signed message verifies with Huawei's
published certificate, shipped with the package; any change to what is signed does not."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from consumer.devtools.simulator.notify import SmnSigner
from consumer.ingress.certs import load_pinned, shipped_pem
from consumer.ingress.refusal import Refused
from consumer.ingress.smn import SIGNED_FIELDS, parse, verify
from tests.ingest_support import REAL_CERT_FILE, real_message, shared_file, sign_text

SHIPPED_KEYS = [p.key for p in load_pinned(())]


def refusal(document: object, header: str | None = "Notification") -> Refused:
    with pytest.raises(Refused) as info:
        parse(document, header)
    return info.value


def test_the_shipped_certificate_is_huaweis_published_one() -> None:
    assert shipped_pem() == shared_file(REAL_CERT_FILE)
    cert = x509.load_pem_x509_certificate(shipped_pem())
    assert cert.subject.rfc4514_string() == "CN=Huawei-Cloud-SMN-Meter,O=Huawei,C=CN"


def test_the_real_signed_message_verifies_with_the_shipped_certificate() -> None:
    assert verify(parse(real_message(), "Notification"), SHIPPED_KEYS)


@pytest.mark.parametrize("field", SIGNED_FIELDS["Notification"])
def test_one_changed_byte_in_any_signed_field_fails(field: str) -> None:
    message = real_message()
    value = message[field]
    message[field] = value[:-1] + ("x" if value[-1] != "x" else "y")
    # type must stay a known one to be parsed at all: change it in case only.
    if field == "type":
        message[field] = "notification"
        with pytest.raises(Refused):
            parse(message, None)
        return

    assert not verify(parse(message, "Notification"), SHIPPED_KEYS)


def test_a_changed_signature_fails() -> None:
    message = real_message()
    message["signature"] = "A" + message["signature"][1:]

    assert not verify(parse(message, "Notification"), SHIPPED_KEYS)


def test_a_signature_that_is_not_base64_fails_without_raising() -> None:
    message = real_message()
    message["signature"] = "not base64 !"

    assert not verify(parse(message, "Notification"), SHIPPED_KEYS)


def test_a_dropped_subject_fails() -> None:
    message = real_message()
    del message["subject"]

    assert not verify(parse(message, "Notification"), SHIPPED_KEYS)


def test_the_string_to_sign_ends_with_a_newline_and_leaves_out_an_empty_subject() -> None:
    message = real_message()
    message["subject"] = ""

    text = parse(message, None).string_to_sign().decode()

    assert text.endswith(f"type\n{message['type']}\n")
    assert "subject\n" not in text


def test_a_signature_made_without_the_final_newline_is_refused() -> None:
    signer = SmnSigner()
    envelope = signer.envelope('{"event_type": "coverComplete"}')
    text = parse(envelope, None).string_to_sign().decode()
    envelope["signature"] = sign_text(signer, text.removesuffix("\n"))
    key = signer.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)

    assert not verify(parse(envelope, None), [key])
    envelope["signature"] = sign_text(signer, text)
    assert verify(parse(envelope, None), [key])


@pytest.mark.parametrize("version", ["v2", "1", "", "v1 "])
def test_a_signature_version_other_than_v1_is_refused_with_403(version: str) -> None:
    message = real_message()
    message["signature_version"] = version

    refused = refusal(message)

    assert (refused.status, refused.reason) == (403, "signature")


def test_signature_version_is_compared_case_insensitively() -> None:
    message = real_message()
    message["signature_version"] = "V1"

    assert verify(parse(message, "Notification"), SHIPPED_KEYS)


def test_a_type_other_than_the_header_says_is_refused_with_400() -> None:
    refused = refusal(real_message(), "SubscriptionConfirmation")

    assert (refused.status, refused.reason) == (400, "type")


def test_an_unknown_type_is_refused_with_400_naming_it() -> None:
    message = real_message()
    message["type"] = "Telegram"

    refused = refusal(message, None)

    assert (refused.status, refused.reason) == (400, "type")
    assert "'Telegram'" in refused.detail


@pytest.mark.parametrize("field", ["message_id", "topic_urn", "timestamp", "signature"])
def test_a_missing_signed_field_is_refused_with_400_naming_it(field: str) -> None:
    message = real_message()
    del message[field]

    refused = refusal(message)

    assert (refused.status, refused.reason) == (400, "malformed")
    assert field in refused.detail


def test_a_value_that_is_not_a_string_is_refused_with_400() -> None:
    message: dict[str, object] = {**real_message(), "message_id": 42}

    assert refusal(message).status == 400


@pytest.mark.parametrize("document", [[1, 2], "text", 3, None])
def test_a_body_that_is_not_an_object_is_refused_with_400(document: object) -> None:
    assert refusal(document).reason == "malformed"


def test_a_confirmation_signs_subscribe_url_in_place_of_subject() -> None:
    signer = SmnSigner()
    url = "https://console.huaweicloud.com/smn/subscription/confirm?token=t1"
    envelope = signer.envelope("invited", kind="SubscriptionConfirmation", subscribe_url=url)
    key = signer.certificate.public_key()
    assert isinstance(key, rsa.RSAPublicKey)

    assert verify(parse(envelope, "SubscriptionConfirmation"), [key])
    envelope["subscribe_url"] = url.replace("t1", "t2")
    assert not verify(parse(envelope, "SubscriptionConfirmation"), [key])


@pytest.mark.parametrize("kind", ["HttpSubscriptionUserConfirm", "HttpSubscriptionUserUnsubscribe"])
def test_types_without_documented_fields_parse_as_unverifiable(kind: str) -> None:
    message = parse({"type": kind, "message_id": "m1"}, kind)

    assert not message.verifiable
