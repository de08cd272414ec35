"""sbnn_runtime refuses, at import, a library built for another machine, naming the
supported platforms (a wheel copied to the wrong device)."""

import platform
import shutil

import pytest

from sbnn_runtime import _platform, library_path


def test_the_installed_library_matches_this_machine():
    _platform.check()  # what `import sbnn_runtime` ran: no error here
    assert _platform._library_machine(__import__("pathlib").Path(library_path())) == platform.machine()


def test_library_for_another_machine_is_refused(tmp_path):
    other = {"x86_64": 183, "aarch64": 62}[platform.machine()]  # ELF e_machine of the other
    lib = tmp_path / "libsbnn_delegate.so"
    shutil.copy(library_path(), lib)
    data = bytearray(lib.read_bytes())
    data[18:20] = other.to_bytes(2, "little")
    lib.write_bytes(bytes(data))
    with pytest.raises(ImportError) as err:
        _platform.check(lib)
    msg = str(err.value)
    assert f"this Python runs on linux {platform.machine()}" in msg
    assert "Supported: Linux x86_64 or aarch64 (64-bit) with glibc >= 2.24, Python >= 3.10" in msg


def test_not_an_elf_file_is_refused(tmp_path):
    lib = tmp_path / "libsbnn_delegate.so"
    lib.write_bytes(b"not a library at all")
    with pytest.raises(ImportError, match="Supported: Linux x86_64 or aarch64"):
        _platform.check(lib)
