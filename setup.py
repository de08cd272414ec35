"""Install sbnn_keras: `pip install -e .[test]` (see README for the one-command set-up)."""

import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent
# The one home of the version: VERSION (tflite/CMakeLists.txt reads it too).
VERSION = (HERE / "VERSION").read_text(encoding="utf-8").strip()

# Versions verified to work together (docs/install.md): TF 2.16 + legacy Keras for
# larq, LCE 0.16 built against TF 2.16.1, numpy < 2 for larq, protobuf < 5 for TF 2.16.
INSTALL_REQUIRES = [
    "tensorflow>=2.16.1,<2.17",
    "tf-keras>=2.16.0,<2.17",
    "larq==0.14.0",
    "larq-compute-engine==0.16.0",
    "keras-tuner>=1.4.7,<1.5",
    "numpy>=1.23,<2",
    "protobuf>=3.20.3,<5",
    "tensorflow-datasets>=4.9.3,<=4.9.10",
    "tensorflow-metadata>=1.14,<=1.16.1",
    "matplotlib>=3.7",
    "tqdm>=4.60",
]

# The documentation site (mkdocs.yml, `make docs`, tests/test_docs.py): the set verified
# together. These releases need Python >= 3.11; on older Pythons the extra installs
# nothing and tests/test_docs.py skips the site build (the link checks still run).
_PY311 = '; python_version >= "3.11"'
DOCS_REQUIRE = [
    pin + _PY311
    for pin in (
        "mkdocs==1.6.1",
        "mkdocstrings==1.0.8",
        "mkdocstrings-python==2.0.11",
        "mkdocs-autorefs==1.4.5",
        "griffelib==2.4.1",
        "pymdown-extensions==13.1",
        "Markdown==3.11.3",
    )
]

EXTRAS = {
    "docs": DOCS_REQUIRE,
    # ai-edge-litert: the second runtime the delegate is tested in (coexists with TF 2.16:
    # numpy 1.26, protobuf 4.25, ml-dtypes 0.3.2 all accepted). The docs extra is part of
    # it because the test suite builds the site (tests/test_docs.py).
    "test": ["pytest>=7.4", "hypothesis>=6.80", "scikit-learn>=1.3", "ai-edge-litert==2.3.0",
             *DOCS_REQUIRE],
}


# ---- native runtime: libsbnn_delegate.so (tflite/, docs/runtime.md) -------------------
# Built with CMake and placed in sbnn_runtime/_native/: in the source tree for editable
# installs (`pip install -e .`, `python setup.py build_ext --inplace`), in the wheel
# otherwise. SBNN_SKIP_NATIVE=1 skips it (sbnn_runtime then reports how to build).
NATIVE_LIBRARY = "libsbnn_delegate.so"


class CMakeLibrary(Extension):
    """A shared library built by CMake rather than by setuptools' compiler."""

    def __init__(self, name: str, source_dir: Path, target: str):
        super().__init__(name, sources=[])
        self.source_dir = source_dir
        self.target = target


class BuildNative(build_ext):
    """build_ext that runs CMake on tflite/ and copies the library into the package."""

    def run(self):
        if os.environ.get("SBNN_SKIP_NATIVE") == "1":
            print("SBNN_SKIP_NATIVE=1: not building the native delegate")
            return
        for ext in self.extensions:
            self._build_cmake(ext)

    def _destinations(self, ext):
        package = ext.name.rpartition(".")[0]
        dests = [Path(self.build_lib, *package.split("."))]
        if self.inplace or getattr(self, "editable_mode", False):
            build_py = self.get_finalized_command("build_py")
            dests.append(Path(build_py.get_package_dir(package)).resolve())
        return dests

    def _build_cmake(self, ext):
        cmake = shutil.which("cmake")
        if cmake is None:
            raise RuntimeError(
                "building the sbnn delegate needs cmake >= 3.16 and a C++17 compiler "
                "(Debian: apt-get install cmake g++), or set SBNN_SKIP_NATIVE=1"
            )
        build_dir = Path(self.build_temp).resolve() / "sbnn_tflite"
        build_dir.mkdir(parents=True, exist_ok=True)
        subprocess.check_call(
            [cmake, "-S", str(ext.source_dir), "-B", str(build_dir),
             "-DCMAKE_BUILD_TYPE=Release", "-DSBNN_BUILD_TESTS=OFF",
             "-DSBNN_BUILD_BENCH=OFF"]
        )
        jobs = str(max(1, min(os.cpu_count() or 1, 8)))
        subprocess.check_call(
            [cmake, "--build", str(build_dir), "--target", ext.target, "-j", jobs]
        )
        for dest in self._destinations(ext):
            dest.mkdir(parents=True, exist_ok=True)
            # Copy to a temporary name, then rename: overwriting the file in place
            # would change the code under processes that have it loaded (crash).
            tmp = dest / f".{NATIVE_LIBRARY}.{os.getpid()}.tmp"
            shutil.copy(build_dir / NATIVE_LIBRARY, tmp)  # fresh mtime
            os.replace(tmp, dest / NATIVE_LIBRARY)

    def get_outputs(self):
        return [
            str(Path(self.build_lib, *ext.name.rpartition(".")[0].split("."), NATIVE_LIBRARY))
            for ext in self.extensions
        ]

    def get_output_mapping(self):
        return {}


setup(
    name="sbnn_keras",
    version=VERSION,
    description="Sparse binary neural networks (SBNN) for Keras/larq, with TFLite export",
    long_description=(HERE / "README.md").read_text(encoding="utf-8")
    if (HERE / "README.md").exists()
    else "",
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # LCE 0.16 ships wheels for CPython 3.10-3.12 only.
    python_requires=">=3.10,<3.13",
    packages=find_packages(include=["sbnn_keras", "sbnn_keras.*", "sbnn_runtime", "sbnn_runtime.*", "sbnn_zoo", "sbnn_zoo.*"]),
    ext_modules=[CMakeLibrary("sbnn_runtime._native.sbnn_delegate", HERE / "tflite", "sbnn_delegate")],
    cmdclass={"build_ext": BuildNative},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": ["sbnn-keras=sbnn_keras.cli:main"],
        # the zoo offers its layers/quantizers to sbnn_keras.custom_objects()
        "sbnn_keras.custom_objects": ["zoo=sbnn_zoo.zoo:custom_objects"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
