"""Connected systems' secrets at rest: useless without the key file, which is made once and
never silently replaced."""

from __future__ import annotations

import base64
import stat
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from axis.secretbox import KEY_FILE_NAME, SecretBox, SecretBoxError, new_secret


def test_the_key_file_is_made_once_private_and_reloaded(tmp_path: Path) -> None:
    """First use makes a 0600 key file; later uses load the same key."""
    path = tmp_path / KEY_FILE_NAME
    box, created = SecretBox.load_or_create(path)
    assert created and stat.S_IMODE(path.stat().st_mode) == 0o600
    again, created_again = SecretBox.load_or_create(path)
    assert not created_again and again.fingerprint == box.fingerprint
    assert again.open(box.seal("s3cret", "vxp.saas.03"), "vxp.saas.03") == "s3cret"
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE_NAME]  # no temporary left


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    """Workers racing to create the key file all end with the one that won."""
    path = tmp_path / KEY_FILE_NAME
    barrier = threading.Barrier(8)
    results: list[tuple[str, bool]] = []

    def start() -> None:
        barrier.wait()
        box, created = SecretBox.load_or_create(path)
        results.append((box.fingerprint, created))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({fp for fp, _ in results}) == 1
    assert sum(created for _, created in results) == 1


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"axis-secretbox-v1:short\n",
        b"garbage\n",
        b"\xff\xfe",
        b"axis-secretbox-v1:" + b"A" * 44,
    ],
)
def test_a_malformed_key_file_is_refused_naming_it(tmp_path: Path, content: bytes) -> None:
    """A damaged key file stops the axis with its path named, and is left untouched (making a
    new one would lose every secret sealed under the old)."""
    path = tmp_path / KEY_FILE_NAME
    path.write_bytes(content)
    with pytest.raises(SecretBoxError, match=str(path)):
        SecretBox.load_or_create(path)
    assert path.read_bytes() == content


def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    """load (without create) says which file is missing."""
    with pytest.raises(SecretBoxError, match="missing"):
        SecretBox.load(tmp_path / KEY_FILE_NAME)


@given(st.text(max_size=100), st.text(max_size=64))
def test_sealed_secrets_open_only_for_their_system(secret: str, system: str) -> None:
    """Sealing is versioned ASCII text that opens to the secret, for the same system only, and
    two seals of the same secret differ (random nonce)."""
    box = SecretBox(bytes(32))
    sealed = box.seal(secret, system)
    assert sealed.startswith("v1.") and sealed.isascii()
    assert box.open(sealed, system) == secret
    assert box.seal(secret, system) != sealed
    with pytest.raises(SecretBoxError):
        box.open(sealed, system + "x")


def test_another_key_or_an_altered_row_does_not_open() -> None:
    """A node with another key file, or a changed character, is refused with a clear error."""
    box, other = SecretBox(bytes(32)), SecretBox(bytes([1]) * 32)
    secret = new_secret()
    sealed = box.seal(secret, "vxp.saas.03")
    assert secret not in sealed and secret.rstrip("=") not in sealed
    with pytest.raises(SecretBoxError, match=other.fingerprint):
        other.open(sealed, "vxp.saas.03")
    flipped = sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]
    with pytest.raises(SecretBoxError):
        box.open(flipped, "vxp.saas.03")


@given(st.text(max_size=200))
def test_garbage_never_opens_nor_crashes(text: str) -> None:
    """Whatever a row holds, open answers the secret or SecretBoxError, nothing else."""
    with pytest.raises(SecretBoxError):
        SecretBox(bytes(32)).open(text, "s")


def test_new_secrets_look_like_the_sdks_examples() -> None:
    """32 random bytes in base64: 44 characters, never the same twice."""
    made = {new_secret() for _ in range(100)}
    assert len(made) == 100
    for secret in made:
        assert len(secret) == 44 and len(base64.b64decode(secret, validate=True)) == 32
