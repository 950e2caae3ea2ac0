"""provisioner: infrastructure as code for the Vapi voice-AI platform.

Importing the package has no side effects; the CLI lives in `provisioner.cli`.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
