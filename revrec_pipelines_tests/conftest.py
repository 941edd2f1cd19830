"""Fixtures shared by the tests: real servers on loopback (SFTP, S3) live in servers.py."""

pytest_plugins = ["revrec_pipelines_tests.servers"]
