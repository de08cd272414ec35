"""sbnn-runtime: the runtime half of this repository as its own distribution.

Not run from here: scripts/build_wheels.sh (`make wheels`) copies this file, the
sbnn_runtime package and the libsbnn_delegate.so built for one architecture into a
staging directory and builds the wheel there. SBNN_VERSION and SBNN_WHEEL_PLAT come from
that script.
"""

import os
from pathlib import Path

from setuptools import setup
from setuptools.dist import Distribution

try:
    from setuptools.command.bdist_wheel import bdist_wheel
except ImportError:  # setuptools < 70.1
    from wheel.bdist_wheel import bdist_wheel

HERE = Path(__file__).parent
PLAT = os.environ["SBNN_WHEEL_PLAT"]  # e.g. linux_aarch64; auditwheel retags it


class BinaryDistribution(Distribution):
    """Holds a native library: installed to platlib, and the wheel is not pure."""

    def has_ext_modules(self):
        return True


class PlatformWheel(bdist_wheel):
    """A py3-none-<platform> wheel: one wheel serves every supported Python, because the
    package is Python code plus a shared library that does not use the Python C API
    (it is loaded with ctypes / the TFLite delegate loader)."""

    def get_tag(self):
        return "py3", "none", PLAT


setup(
    name="sbnn-runtime",
    version=os.environ["SBNN_VERSION"],
    description="Run sparse binary neural networks (.tflite from sbnn_keras) on CPUs: "
                "TFLite delegate with AVX2/AVX-512/NEON kernels, no TensorFlow needed",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # ai-edge-litert (the interpreter) ships wheels for these; the delegate accepts its
    # version 2.3.0 only (docs/runtime.md, version gate).
    python_requires=">=3.10",
    packages=["sbnn_runtime", "sbnn_runtime._native"],
    package_data={"sbnn_runtime._native": ["libsbnn_delegate.so"]},
    install_requires=["numpy>=1.23", "ai-edge-litert==2.3.0"],
    entry_points={"console_scripts": ["sbnn-runtime=sbnn_runtime.__main__:main"]},
    distclass=BinaryDistribution,
    cmdclass={"bdist_wheel": PlatformWheel},
    zip_safe=False,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
