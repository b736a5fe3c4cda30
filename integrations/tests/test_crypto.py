import pytest
from cryptography.fernet import Fernet

from integrations.crypto import SecretUnreadableError, secret_decrypt, secret_encrypt


def test_secret_round_trips_and_is_not_stored_in_clear():
    token = secret_encrypt("moysklad-token-123")
    assert "moysklad-token-123" not in token
    assert secret_decrypt(token) == "moysklad-token-123"


def test_a_changed_key_is_a_clear_error(settings):
    token = secret_encrypt("s3cret")
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(SecretUnreadableError, match="encryption key changed"):
        secret_decrypt(token)
