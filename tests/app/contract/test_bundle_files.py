"""Bundle file hashes: a known digest, and every listed file checked (missing, changed, unlisted)."""

from pathlib import Path

from app.contract.bundle_files import bundle_files, file_problems, sha256_file


def test_sha256_of_a_known_content(tmp_path: Path) -> None:
    # sha256("abc"), FIPS 180-2 test vector.
    path = tmp_path / "__sha_probe.tmp"
    path.write_bytes(b"abc")
    assert sha256_file(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_file_problems_name_each_missing_changed_and_unlisted_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.bin").write_bytes(b"a")
    (tmp_path / "metadata.json").write_text("{}")
    listed = bundle_files(tmp_path)
    assert list(listed) == ["sub/a.bin"] and file_problems(tmp_path, listed) == []
    (tmp_path / "sub" / "a.bin").write_bytes(b"b")
    (tmp_path / "b.bin").write_bytes(b"b")
    assert file_problems(tmp_path, {**listed, "c.bin": "0"}) == [
        "sha256 mismatch for 'sub/a.bin'",
        "listed file 'c.bin' is missing",
        "file 'b.bin' is not listed in metadata",
    ]
