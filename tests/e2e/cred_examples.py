"""One valid and one invalid credential per type, for the e2e tests.

VALID[type] is a data object the type accepts. INVALID[type] is (data, field,
reason): a data object it refuses, the field the refusal names ("data" for
the object as a whole) and a piece of the reason. Every value is distinct, so
a test can look for it in output, logs and files. test_types.py fails if a
type has no entry here.
"""

TRMM = {"url": "https://rmm.acme.example", "api_key": "TRMM-e2e-key-0123456789"}
SLACK_HOOK = "https://hooks.slack.com/services/T0E2E0000/B0E2E0000/e2eSlackHookSecret123"
TEAMS_HOOK = "https://acme.webhook.office.com/webhookb2/e2e-TeamsHookSecret@x/IncomingWebhook/ab/cd"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJlMmUtbmNlbnRyYWwifQ.e2eNcentralSignature_-0"

VALID = {
    "tactical-rmm": TRMM,
    "connectwise-manage": {"site": "api-na.myconnectwise.net", "company_id": "acme",
                           "public_key": "pubkey123", "private_key": "privkey-e2e-1",
                           "client_id": "1b1e3c9e-5f61-4bd3-9a34-0d7b2f7a9c11"},
    "connectwise-automate": {"server_url": "https://automate.acme.example", "username": "svc",
                             "password": "pw-e2e-automate", "client_id": "cid-1"},
    "kaseya-vsa": {"url": "https://vsa.acme.example", "username": "svc-vsa", "api_token": "tok-e2e-vsa"},
    "autotask": {"zone_url": "https://webservices5.autotask.net", "username": "api@acme.example",
                 "secret": "sec-e2e-at", "integration_code": "IC-E2E"},
    "prtg": {"url": "https://prtg.acme.example", "username": "prtgadmin", "passhash": "1234567890"},
    "solarwinds-orion": {"url": "https://orion.acme.example:17774", "username": "swis-e2e",
                         "password": "pw-e2e-orion",
                         "verify_tls_fingerprint": "AB:" * 31 + "CD"},
    "nable-ncentral": {"server_url": "https://ncentral.acme.example", "api_token": JWT},
    "slack": {"bot_token": "xoxb-1234-5678-e2etoken", "signing_secret": "0123456789abcdef0123456789abcdef"},
    "slack-webhook": {"url": SLACK_HOOK},
    "teams": {"tenant_id": "72f988bf-86f1-41af-91ab-2d7cd011db47",
              "client_id": "1b1e3c9e-5f61-4bd3-9a34-0d7b2f7a9c11", "client_secret": "teams-e2e-secret"},
    "teams-webhook": {"url": TEAMS_HOOK},
    "generic": {"token": "gen-e2e-token", "pem": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n"},
}

# PRTG's other form.
PRTG_API_TOKEN = {"url": "https://prtg.acme.example", "api_token": "PRTGAPITOKENE2E234567ABCDEFGHIJK"}


def _with(t, **kw):
    d = dict(VALID[t])
    for k, v in kw.items():
        if v is None:
            d.pop(k)
        else:
            d[k] = v
    return d


INVALID = {
    "tactical-rmm": (_with("tactical-rmm", url="http://rmm.acme.example"), "url", "https://"),
    "connectwise-manage": (_with("connectwise-manage", site="https://api-na.myconnectwise.net"),
                           "site", "host name"),
    "connectwise-automate": (_with("connectwise-automate", server_url="https://u:bad-e2e-pw@a.acme.example"),
                             "server_url", "credentials"),
    "kaseya-vsa": (_with("kaseya-vsa", api_token=None), "api_token", "required"),
    "autotask": (_with("autotask", zone_url=None), "zone_url", "required"),
    "prtg": (dict(VALID["prtg"], api_token="PRTG-both-forms-e2e"), "data", "more than one form"),
    "solarwinds-orion": (_with("solarwinds-orion", verify_tls_fingerprint="AB:CD:EF"),
                         "verify_tls_fingerprint", "SHA-256"),
    "nable-ncentral": (_with("nable-ncentral", api_token="not-a-jwt-e2e-token"), "api_token", "JSON Web Token"),
    "slack": (_with("slack", bot_token="xoxp-e2e-user-token"), "bot_token", "xoxb-"),
    "slack-webhook": (_with("slack-webhook", url="https://hooks.slack.com.evil.example/services/e2e"),
                      "url", "hooks.slack.com"),
    "teams": (_with("teams", tenant_id="acme.onmicrosoft.com"), "tenant_id", "GUID"),
    "teams-webhook": (_with("teams-webhook", url="http://acme.webhook.office.com/e2e-plain-hook"),
                      "url", "https://"),
    "generic": ({"token": "gen\x1be2e"}, "token", "control characters"),
}
