"""`python -m provisioner` is the same as the `provisioner` command."""

from provisioner.cli.main import main

if __name__ == "__main__":
    main()
