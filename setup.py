"""Package discovery for the one thing pyproject.toml cannot say: kernels/ installs as fastconv.kernels."""
from setuptools import find_packages, setup

api_packages = find_packages(include=["fastconv", "fastconv.*"])
kernel_packages = ["fastconv." + name for name in find_packages(include=["kernels", "kernels.*"])]
setup(packages=api_packages + kernel_packages)
