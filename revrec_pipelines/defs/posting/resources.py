"""Posting targets as resources. Secrets come from the environment (EnvVar) and never reach run config,
logs or metadata; a target whose credentials are missing says which variables to set."""

import os

import dagster as dg

from revrec_pipelines.lib.intacct import IntacctClient
from revrec_pipelines.lib.rillet import RilletClient


class MissingCredentials(dg.Failure):
    pass


class RilletResource(dg.ConfigurableResource):
    """Rillet REST API (RILLET_BASE_URL, RILLET_API_KEY)."""

    base_url: str = "https://api.rillet.com"
    api_key: str | None = None
    timeout: float = 30.0
    max_requests_per_minute: int = 55

    def client(self) -> RilletClient:
        if not self.api_key:
            raise MissingCredentials(description="Rillet is not configured: set RILLET_API_KEY (and RILLET_BASE_URL for the sandbox).")
        return RilletClient(self.base_url, self.api_key, timeout=self.timeout, max_requests_per_minute=self.max_requests_per_minute)


class IntacctResource(dg.ConfigurableResource):
    """Sage Intacct XML gateway (INTACCT_* settings)."""

    endpoint_url: str = "https://api.intacct.com/ia/xml/xmlgw.phtml"
    sender_id: str | None = None
    sender_password: str | None = None
    company_id: str | None = None
    user_id: str | None = None
    user_password: str | None = None
    journal: str = "APJ"
    timeout: float = 120.0

    def client(self) -> IntacctClient:
        missing = [name for name, value in (
            ("INTACCT_SENDER_ID", self.sender_id), ("INTACCT_SENDER_PASSWORD", self.sender_password),
            ("INTACCT_COMPANY_ID", self.company_id), ("INTACCT_USER_ID", self.user_id),
            ("INTACCT_USER_PASSWORD", self.user_password)) if not value]
        if missing:
            raise MissingCredentials(description="Sage Intacct is not configured: set " + ", ".join(missing))
        return IntacctClient(
            self.endpoint_url, self.sender_id, self.sender_password, self.company_id, self.user_id,
            self.user_password, journal=self.journal, timeout=self.timeout,
        )


def _env(name: str):
    """EnvVar when the variable is set (resolved at run time, never shown), else None."""
    return dg.EnvVar(name) if os.environ.get(name) else None


def build_posting_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "rillet": RilletResource(
            base_url=os.environ.get("RILLET_BASE_URL") or "https://api.rillet.com", api_key=_env("RILLET_API_KEY")
        ),
        "intacct": IntacctResource(
            endpoint_url=os.environ.get("INTACCT_ENDPOINT_URL") or "https://api.intacct.com/ia/xml/xmlgw.phtml",
            sender_id=_env("INTACCT_SENDER_ID"),
            sender_password=_env("INTACCT_SENDER_PASSWORD"),
            company_id=_env("INTACCT_COMPANY_ID"),
            user_id=_env("INTACCT_USER_ID"),
            user_password=_env("INTACCT_USER_PASSWORD"),
            journal=os.environ.get("INTACCT_JOURNAL") or "APJ",
        ),
    }
