"""Pseudonyms and field encryption (privacy checks 2 and 3)."""

from __future__ import annotations

import hashlib
import secrets

import pytest

from storage.vault import DecryptionError, Vault, aad


def vault(master: bytes | None = None, pseudo: bytes | None = None) -> Vault:
    return Vault({1: master or secrets.token_bytes(32)}, {1: pseudo or secrets.token_bytes(32)})


def test_pseudonym_is_not_a_plain_hash_and_depends_on_the_key() -> None:
    a, b = vault(), vault()
    p = a.pseudonym("telegram", "123456789")
    assert p != hashlib.sha256(b"123456789").hexdigest()
    assert p != hashlib.sha256(b"telegram:123456789").hexdigest()
    assert p == a.pseudonym("telegram", "123456789")
    assert p != b.pseudonym("telegram", "123456789")
    assert p != a.pseudonym("matrix", "123456789")
    assert "123456789" not in p


def test_versioned_pseudonym_keys() -> None:
    k1, k2 = secrets.token_bytes(32), secrets.token_bytes(32)
    v = Vault({1: secrets.token_bytes(32)}, {1: k1, 2: k2})
    assert v.pseudonym_version == 2
    assert v.pseudonym_versions() == [2, 1]
    assert v.pseudonym("t", "1") != v.pseudonym("t", "1", version=1)
    assert v.pseudonym("t", "1", version=1) == Vault({1: k2}, {1: k1}).pseudonym("t", "1")


def test_field_bound_to_table_column_and_row() -> None:
    v = vault()
    dek, _ = v.new_data_key("k1")
    blob = v.seal(dek, b"secret", aad("contacts", "address", "row1"))
    assert v.open(dek, blob, aad("contacts", "address", "row1")) == b"secret"
    for wrong in (
        aad("contacts", "address", "row2"),
        aad("contacts", "profile", "row1"),
        aad("cases", "address", "row1"),
    ):
        with pytest.raises(DecryptionError):
            v.open(dek, blob, wrong)


def test_field_fails_under_another_data_key() -> None:
    v = vault()
    dek_a, _ = v.new_data_key("a")
    dek_b, _ = v.new_data_key("b")
    blob = v.seal(dek_a, b"x", aad("t", "c", "r"))
    with pytest.raises(DecryptionError):
        v.open(dek_b, blob, aad("t", "c", "r"))


def test_tampered_field_fails() -> None:
    v = vault()
    dek, _ = v.new_data_key("a")
    blob = bytearray(v.seal(dek, b"hello", aad("t", "c", "r")))
    blob[-1] ^= 1
    with pytest.raises(DecryptionError):
        v.open(dek, bytes(blob), aad("t", "c", "r"))
    with pytest.raises(DecryptionError):
        v.open(dek, b"short", aad("t", "c", "r"))


def test_wrapped_key_bound_to_its_id_and_master() -> None:
    v = vault()
    dek, wrapped = v.new_data_key("key-1")
    assert v.unwrap("key-1", wrapped) == dek
    assert dek not in wrapped
    with pytest.raises(DecryptionError):
        v.unwrap("key-2", wrapped)
    with pytest.raises(DecryptionError):
        vault().unwrap("key-1", wrapped)


def test_rewrap_under_new_master_version() -> None:
    m1, m2 = secrets.token_bytes(32), secrets.token_bytes(32)
    old = Vault({1: m1}, {1: secrets.token_bytes(32)})
    dek, wrapped = old.new_data_key("k")
    both = Vault({1: m1, 2: m2}, {1: secrets.token_bytes(32)})
    assert Vault.wrapped_version(wrapped) == 1
    rewrapped = both.wrap("k", both.unwrap("k", wrapped))
    assert Vault.wrapped_version(rewrapped) == 2
    assert Vault({2: m2}, {1: secrets.token_bytes(32)}).unwrap("k", rewrapped) == dek
