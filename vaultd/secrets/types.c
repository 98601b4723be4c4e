/* vaultd/secrets/types.c: see types.h. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "vaultd/secrets/types.h"

#define LEN_NAME 256            /* usernames, ids */
#define LEN_KEY 4096            /* keys, tokens, passwords */
#define LEN_URL 2048
#define LEN_HOST 253            /* RFC 1035 name, without the trailing dot */
#define LEN_GUID 36
#define LEN_HEX32 32

#define STR(n, req, sens, max, desc) \
	{ .name = (n), .kind = CRED_FIELD_STRING, .required = (req), .sensitive = (sens), \
	  .max_len = (max), .description = (desc) }
#define FMT(n, sens, max, fmt, desc) \
	{ .name = (n), .kind = CRED_FIELD_STRING, .required = true, .sensitive = (sens), \
	  .max_len = (max), .description = (desc), .format = (fmt) }
#define URL(n, desc) \
	{ .name = (n), .kind = CRED_FIELD_URL, .required = true, .sensitive = false, \
	  .max_len = LEN_URL, .description = (desc) }
/* A URL that is itself the credential (incoming webhooks). */
#define SECRET_URL(n, fmt, desc) \
	{ .name = (n), .kind = CRED_FIELD_URL, .required = true, .sensitive = true, \
	  .max_len = LEN_URL, .description = (desc), .format = (fmt) }
/* A field of form 'fm' (see struct cred_form). */
#define IN_FORM(fm, n, sens, max, desc) \
	{ .name = (n), .kind = CRED_FIELD_STRING, .required = true, .sensitive = (sens), \
	  .max_len = (max), .description = (desc), .form = (fm) }

static const struct cred_field tactical_rmm_fields[] = {
	URL("url", "API URL, e.g. https://api.example.com"),
	STR("api_key", true, true, LEN_KEY, "API key"),
};

static const struct cred_field cw_manage_fields[] = {
	FMT("site", false, LEN_HOST, CRED_FORMAT_HOSTNAME,
	    "API host name without https://, e.g. api-na.myconnectwise.net"),
	STR("company_id", true, false, LEN_NAME, "company identifier used at login"),
	/* Not sensitive: the public key names the API key, as a user name names an
	 * account; ConnectWise lists it in the member's API Keys tab. Without
	 * private_key it authenticates nothing. See docs/api.md. */
	STR("public_key", true, false, LEN_KEY,
	    "API member public key; identifies the key pair, the secret half is private_key"),
	STR("private_key", true, true, LEN_KEY, "API member private key"),
	STR("client_id", true, false, LEN_NAME, "clientId issued by the ConnectWise developer portal"),
};

static const struct cred_field cw_automate_fields[] = {
	URL("server_url", "Automate server URL, e.g. https://automate.example.com"),
	STR("username", true, false, LEN_NAME, "integrator user name"),
	STR("password", true, true, LEN_KEY, "integrator password"),
	STR("client_id", true, false, LEN_NAME, "clientId issued by ConnectWise"),
};

static const struct cred_field kaseya_vsa_fields[] = {
	URL("url", "VSA server URL, e.g. https://vsa.example.com"),
	STR("username", true, false, LEN_NAME, "user name"),
	STR("api_token", true, true, LEN_KEY, "personal access token"),
};

static const struct cred_field autotask_fields[] = {
	URL("zone_url", "API zone for this user, e.g. https://webservices5.autotask.net "
			"(from the zoneInformation call)"),
	STR("username", true, false, LEN_NAME, "API user name"),
	STR("secret", true, true, LEN_KEY, "API user secret"),
	STR("integration_code", true, true, LEN_KEY, "API tracking identifier (integration code)"),
};

static const struct cred_field prtg_fields[] = {
	URL("url", "PRTG server URL, e.g. https://prtg.example.com"),
	IN_FORM("passhash", "username", false, LEN_NAME, "user name"),
	IN_FORM("passhash", "passhash", true, LEN_KEY, "passhash from the user's account settings"),
	IN_FORM("api-token", "api_token", true, LEN_KEY, "API key from the user account's API Keys tab"),
};

static const struct cred_form prtg_forms[] = {
	{ "api-token", "an API key, sent as apitoken" },
	{ "passhash", "a user name and its passhash" },
};

static const struct cred_field slack_fields[] = {
	FMT("bot_token", true, LEN_KEY, CRED_FORMAT_SLACK_BOT,
	    "bot user OAuth token, starting with xoxb-"),
	FMT("signing_secret", true, LEN_HEX32, CRED_FORMAT_HEX32,
	    "signing secret, 32 hexadecimal digits"),
};

static const struct cred_field slack_webhook_fields[] = {
	SECRET_URL("url", CRED_FORMAT_SLACK_WEBHOOK,
		   "incoming webhook URL, https://hooks.slack.com/services/..."),
};

static const struct cred_field teams_webhook_fields[] = {
	SECRET_URL("url", CRED_FORMAT_NONE,
		   "incoming webhook or Workflows URL from the channel's connector settings"),
};

static const struct cred_field solarwinds_orion_fields[] = {
	URL("url", "SWIS REST endpoint, e.g. https://orion.example.com:17774"),
	STR("username", true, false, LEN_NAME, "Orion account name"),
	STR("password", true, true, LEN_KEY, "Orion account password"),
	{ .name = "verify_tls_fingerprint", .kind = CRED_FIELD_STRING, .required = false,
	  .sensitive = false, .max_len = 95, .format = CRED_FORMAT_SHA256_FP,
	  .description = "SHA-256 fingerprint of the server's certificate, for a self-signed SWIS "
			 "certificate" },
};

static const struct cred_field nable_ncentral_fields[] = {
	URL("server_url", "N-central server URL, e.g. https://ncentral.example.com"),
	FMT("api_token", true, LEN_KEY, CRED_FORMAT_JWT,
	    "API-only user's JSON Web Token (Administration > User Management)"),
};

static const struct cred_field teams_fields[] = {
	FMT("tenant_id", false, LEN_GUID, CRED_FORMAT_GUID, "Entra ID (Azure AD) tenant ID, a GUID"),
	FMT("client_id", false, LEN_GUID, CRED_FORMAT_GUID, "application (client) ID, a GUID"),
	STR("client_secret", true, true, LEN_KEY, "client secret value"),
};

#define TYPE(n, desc, f) { .name = (n), .description = (desc), .fields = (f), .n_fields = ELEMENTSOF(f) }
#define TYPE_FORMS(n, desc, f, fm) \
	{ .name = (n), .description = (desc), .fields = (f), .n_fields = ELEMENTSOF(f), \
	  .forms = (fm), .n_forms = ELEMENTSOF(fm) }

static const struct cred_type cred_types[] = {
	TYPE("tactical-rmm", "Tactical RMM API key", tactical_rmm_fields),
	TYPE("connectwise-manage", "ConnectWise Manage (PSA) API member keys", cw_manage_fields),
	TYPE("connectwise-automate", "ConnectWise Automate integrator account", cw_automate_fields),
	TYPE("kaseya-vsa", "Kaseya VSA API token", kaseya_vsa_fields),
	TYPE("autotask", "Autotask PSA API user", autotask_fields),
	TYPE_FORMS("prtg", "PRTG Network Monitor API key, or user name and passhash", prtg_fields,
		   prtg_forms),
	TYPE("solarwinds-orion", "SolarWinds Orion (SWIS API) account", solarwinds_orion_fields),
	TYPE("nable-ncentral", "N-able N-central (formerly SolarWinds MSP) API token",
	     nable_ncentral_fields),
	TYPE("slack", "Slack app bot token and signing secret", slack_fields),
	TYPE("slack-webhook", "Slack incoming webhook; the URL is the secret", slack_webhook_fields),
	TYPE("teams", "Microsoft Teams (Entra ID application) client credentials", teams_fields),
	TYPE("teams-webhook", "Microsoft Teams incoming webhook; the URL is the secret",
	     teams_webhook_fields),
	{ .name = "generic",
	  .description = "Any 1 to 64 string fields named [A-Za-z0-9_.-]; every value is sensitive; "
			 "values may contain newlines and tabs",
	  .fields = NULL, .n_fields = 0 },
};

const struct cred_type *cred_type_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(cred_types); i++)
		if (streq(cred_types[i].name, name))
			return &cred_types[i];
	return NULL;
}

size_t cred_types_count(void)
{
	return ELEMENTSOF(cred_types);
}

const struct cred_type *cred_type_at(size_t i)
{
	return i < ELEMENTSOF(cred_types) ? &cred_types[i] : NULL;
}

static const struct cred_field *field_find(const struct cred_type *t, const char *name)
{
	for (size_t i = 0; i < t->n_fields; i++)
		if (streq(t->fields[i].name, name))
			return &t->fields[i];
	return NULL;
}

bool cred_field_is_sensitive(const struct cred_type *t, const char *field)
{
	const struct cred_field *f;

	if (!t || !field || t->n_fields == 0)
		return true;
	f = field_find(t, field);
	return f ? f->sensitive : true;
}

/* ---- character classes: explicit ranges, independent of the locale ---- */

static bool c_alnum(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool c_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool c_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Printable ASCII other than space. */
static bool c_graph(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

static bool c_control(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

/* Field names as they appear in JSON keys: length-delimited, since a key may
 * hold a NUL byte. */
static bool field_name_valid(const char *s, size_t n)
{
	if (n == 0 || n > CRED_FIELD_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!c_alnum(c) && c != '_' && c != '.' && c != '-')
			return false;
	}
	return true;
}

/* DNS name: labels of 1..63 [A-Za-z0-9-] not starting or ending with '-',
 * separated by single dots, at most 253 bytes, no trailing dot. */
static bool hostname_valid(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > LEN_HOST)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return false;
			label = 0;
		} else if (c_alnum(c) || c == '-') {
			if (label == 0 && c == '-')
				return false;
			if (++label > 63)
				return false;
		} else
			return false;
	}
	return label > 0 && s[n - 1] != '-';
}

/* Bracketed IPv6 literal contents: hex digits, ':' and '.' (IPv4 tail); the
 * resolver gives the final word. Zone identifiers are refused. */
static bool ipv6_literal_valid(const char *s, size_t n)
{
	bool colon = false;

	if (n < 2 || n > 45)            /* INET6_ADDRSTRLEN - 1 */
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == ':')
			colon = true;
		else if (!c_hex(c) && c != '.')
			return false;
	}
	return colon;
}

static bool guid_valid(const char *s, size_t n)
{
	if (n != LEN_GUID)
		return false;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !c_hex((unsigned char)s[i]))
			return false;
	}
	return true;
}

static bool hex32_valid(const char *s, size_t n)
{
	if (n != LEN_HEX32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!c_hex((unsigned char)s[i]))
			return false;
	return true;
}

static bool slack_bot_valid(const char *s, size_t n)
{
	if (n <= 5 || memcmp(s, "xoxb-", 5) != 0)
		return false;
	for (size_t i = 5; i < n; i++)
		if (!c_graph((unsigned char)s[i]))
			return false;
	return true;
}

static bool c_base64url(unsigned char c)
{
	return c_alnum(c) || c == '-' || c == '_';
}

/* A signed JWT in compact form: header.payload.signature, each non-empty
 * base64url without padding; header and payload are JSON objects, so both
 * start with "eyJ" (base64url of '{"'). The shape only: the token is never
 * decoded, and its signature is the issuer's business. */
static bool jwt_valid(const char *s, size_t n)
{
	size_t part = 0, start = 0;

	for (size_t i = 0; i <= n; i++) {
		if (i < n && s[i] != '.') {
			if (!c_base64url((unsigned char)s[i]))
				return false;
			continue;
		}
		if (i == start || part > 2)
			return false;
		if (part < 2 && (i - start < 3 || memcmp(s + start, "eyJ", 3) != 0))
			return false;
		part++;
		start = i + 1;
	}
	return part == 3;
}

/* 64 hex digits, or 32 pairs separated by ':' (as openssl x509 -fingerprint prints). */
static bool sha256_fp_valid(const char *s, size_t n)
{
	if (n == 64)
		return hex32_valid(s, 32) && hex32_valid(s + 32, 32);
	if (n != 95)
		return false;
	for (size_t i = 0; i < n; i++)
		if (i % 3 == 2 ? s[i] != ':' : !c_hex((unsigned char)s[i]))
			return false;
	return true;
}

static bool slack_webhook_valid(const char *s, size_t n)
{
	static const char prefix[] = "https://hooks.slack.com/services/";

	return n > sizeof(prefix) - 1 && memcmp(s, prefix, sizeof(prefix) - 1) == 0;
}

/* https://host[:port][/path][?query][#fragment]. Returns NULL or a reason.
 * The value has passed the control-character check already. */
static const char *url_check(const char *s, size_t n)
{
	static const char scheme[] = "https://";
	const size_t sl = sizeof(scheme) - 1;
	size_t a, end, host_end, i;

	if (n < sl || memcmp(s, scheme, sl) != 0)
		return "must be an https:// URL";
	for (i = 0; i < n; i++)
		if (!c_graph((unsigned char)s[i]))
			return "URL must not contain spaces or non-ASCII characters";

	a = sl;
	for (end = a; end < n && s[end] != '/' && s[end] != '?' && s[end] != '#'; end++)
		;
	if (memchr(s + a, '@', end - a))
		return "URL must not contain credentials";
	if (end == a)
		return "URL has no host";

	if (s[a] == '[') {
		const char *close = memchr(s + a, ']', end - a);

		if (!close || !ipv6_literal_valid(s + a + 1, (size_t)(close - s) - a - 1))
			return "URL host is not a valid IPv6 address";
		host_end = (size_t)(close - s) + 1;
		if (host_end < end && s[host_end] != ':')
			return "URL host is not a valid IPv6 address";
	} else {
		for (host_end = a; host_end < end && s[host_end] != ':'; host_end++)
			;
		if (host_end == a)
			return "URL has no host";
		if (!hostname_valid(s + a, host_end - a))
			return "URL host is not a valid host name";
	}

	if (host_end < end) {           /* s[host_end] == ':' */
		size_t p = host_end + 1, digits = end - p;
		uint32_t port = 0;

		if (digits == 0 || digits > 5)
			return "URL port must be a number from 1 to 65535";
		for (i = p; i < end; i++) {
			if (!c_digit((unsigned char)s[i]))
				return "URL port must be a number from 1 to 65535";
			port = port * 10 + (uint32_t)(s[i] - '0');
		}
		if (port < 1 || port > 65535)
			return "URL port must be a number from 1 to 65535";
	}
	return NULL;
}

/* What GET /v1/types publishes per format, and the reason a value fails it. */
static const struct {
	const char *name, *accepts, *reason;
} formats[_CRED_FORMAT_MAX] = {
	[CRED_FORMAT_NONE] = { "text", "printable text without control characters", NULL },
	[CRED_FORMAT_HOSTNAME] = { "hostname", "a host name such as api-na.myconnectwise.net, "
					       "without https:// or a path",
				   "must be a host name such as api-na.myconnectwise.net, not a URL" },
	[CRED_FORMAT_GUID] = { "guid", "a GUID, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx (hex digits)",
			       "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" },
	[CRED_FORMAT_HEX32] = { "hex32", "exactly 32 hexadecimal digits",
				"must be 32 hexadecimal digits" },
	[CRED_FORMAT_SLACK_BOT] = { "slack-bot-token", "a Slack bot token: xoxb- then printable ASCII",
				    "must be a Slack bot token starting with xoxb-" },
	[CRED_FORMAT_JWT] = { "jwt", "a signed JSON Web Token: three base64url parts joined by dots",
			      "must be a JSON Web Token (three base64url parts joined by dots)" },
	[CRED_FORMAT_SHA256_FP] = { "sha256-fingerprint",
				    "a SHA-256 fingerprint: 64 hex digits, optionally as colon-separated pairs",
				    "must be a SHA-256 fingerprint (64 hex digits, colons allowed)" },
	[CRED_FORMAT_SLACK_WEBHOOK] = { "slack-webhook-url",
					"a Slack incoming webhook URL, https://hooks.slack.com/services/...",
					"must be a Slack webhook URL, https://hooks.slack.com/services/..." },
};

static const char url_accepts[] = "an https:// URL without user name or password; a port is allowed";

const char *cred_field_format_name(const struct cred_field *f)
{
	if (f->format == CRED_FORMAT_NONE && f->kind == CRED_FIELD_URL)
		return "https-url";
	return formats[f->format].name;
}

const char *cred_field_accepts(const struct cred_field *f)
{
	if (f->format == CRED_FORMAT_NONE && f->kind == CRED_FIELD_URL)
		return url_accepts;
	return formats[f->format].accepts;
}

/* Adds field: reason, keeping the first reason given for a field. -ENOMEM. */
static int add_error(json_t *errors, const char *field, const char *reason)
{
	if (json_object_get(errors, field))
		return 0;
	return json_object_set_new(errors, field, json_string(reason)) < 0 ? -ENOMEM : 0;
}

static int add_error_too_long(json_t *errors, const char *field, size_t max)
{
	char buf[64];

	(void)snprintf(buf, sizeof(buf), "must be at most %zu bytes long", max);
	return add_error(errors, field, buf);
}

/* Checks one value of a typed field. */
static int check_field(json_t *errors, const struct cred_field *f, const json_t *v)
{
	const char *s, *reason = NULL;
	bool ok = true;
	size_t n;

	if (!json_is_string(v))
		return add_error(errors, f->name, "must be a string");
	s = json_string_value(v);
	n = json_string_length(v);      /* not strlen(): the value may hold a NUL */
	if (n == 0)
		return add_error(errors, f->name, "must not be empty");
	if (n > f->max_len)
		return add_error_too_long(errors, f->name, f->max_len);
	for (size_t i = 0; i < n; i++)
		if (c_control((unsigned char)s[i]))
			return add_error(errors, f->name, "must not contain control characters");

	if (f->kind == CRED_FIELD_URL)
		reason = url_check(s, n);
	if (reason)
		return add_error(errors, f->name, reason);
	switch (f->format) {
	case CRED_FORMAT_NONE:
	case _CRED_FORMAT_MAX:
		return 0;
	case CRED_FORMAT_HOSTNAME:
		ok = hostname_valid(s, n);
		break;
	case CRED_FORMAT_GUID:
		ok = guid_valid(s, n);
		break;
	case CRED_FORMAT_HEX32:
		ok = hex32_valid(s, n);
		break;
	case CRED_FORMAT_SLACK_BOT:
		ok = slack_bot_valid(s, n);
		break;
	case CRED_FORMAT_JWT:
		ok = jwt_valid(s, n);
		break;
	case CRED_FORMAT_SHA256_FP:
		ok = sha256_fp_valid(s, n);
		break;
	case CRED_FORMAT_SLACK_WEBHOOK:
		ok = slack_webhook_valid(s, n);
		break;
	}
	return ok ? 0 : add_error(errors, f->name, formats[f->format].reason);
}

static int check_generic_value(json_t *errors, const char *name, const json_t *v)
{
	const char *s;
	size_t n;

	if (!json_is_string(v))
		return add_error(errors, name, "must be a string");
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0)
		return add_error(errors, name, "must not be empty");
	if (n > CRED_GENERIC_VALUE_MAX)
		return add_error_too_long(errors, name, CRED_GENERIC_VALUE_MAX);
	/* Newlines and tabs are allowed so PEM keys and similar fit. */
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c_control(c) && c != '\n' && c != '\t')
			return add_error(errors, name, "must not contain control characters "
						       "other than newline and tab");
	}
	return 0;
}

enum { FORM_ANY = -1, FORM_NONE = -2, FORM_SEVERAL = -3 };

/* Which form 'data' uses: its index, FORM_ANY for a type without forms,
 * FORM_NONE if no form's field is present, FORM_SEVERAL if fields of two
 * forms are. */
static int choose_form(const struct cred_type *t, const json_t *data)
{
	int chosen = FORM_NONE;

	if (t->n_forms == 0)
		return FORM_ANY;
	for (size_t k = 0; k < t->n_forms; k++)
		for (size_t i = 0; i < t->n_fields; i++) {
			const struct cred_field *f = &t->fields[i];

			if (!f->form || !streq(f->form, t->forms[k].name) || !json_object_get(data, f->name))
				continue;
			if (chosen >= 0 && chosen != (int)k)
				return FORM_SEVERAL;
			chosen = (int)k;
		}
	return chosen;
}

/* "needs exactly one of: api_token (an API key), or username and passhash
 * (...)", built from the table so the message names every form's fields. */
static void forms_reason(const struct cred_type *t, bool several, char *buf, size_t size)
{
	size_t n = 0;
	int w;

	w = snprintf(buf, size, "%s", several ? "fields of more than one form; use exactly one of: "
					       : "needs exactly one of: ");
	for (size_t k = 0; w >= 0 && (n += (size_t)w) < size && k < t->n_forms; k++) {
		size_t in = 0;

		w = snprintf(buf + n, size - n, "%s", k ? ", or " : "");
		for (size_t i = 0; w >= 0 && (n += (size_t)w) < size && i < t->n_fields; i++) {
			const struct cred_field *f = &t->fields[i];

			w = 0;
			if (f->form && streq(f->form, t->forms[k].name))
				w = snprintf(buf + n, size - n, "%s%s", in++ ? " and " : "", f->name);
		}
		if (w >= 0 && n < size)
			w = snprintf(buf + n, size - n, " (%s)", t->forms[k].description);
	}
}

int cred_type_validate(const struct cred_type *t, const json_t *data, json_t **ret_errors)
{
	_cleanup_json_ json_t *errors = NULL;
	json_t *obj = (json_t *)data;   /* jansson's iterators take non-const; only read */
	size_t count;
	int form, r;

	if (!t)
		return -EINVAL;
	errors = json_object();
	if (!errors)
		return -ENOMEM;

	if (!json_is_object(data)) {
		r = add_error(errors, "data", "must be a JSON object");
		goto out;
	}
	count = json_object_size(data);
	if (count > CRED_FIELDS_MAX) {
		/* Bounds the size of the errors object as well. */
		r = add_error(errors, "data", "must have at most 64 fields");
		goto out;
	}
	if (t->n_fields == 0 && count == 0) {
		r = add_error(errors, "data", "must have at least one field");
		goto out;
	}

	for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
		const char *key = json_object_iter_key(it);
		size_t key_len = json_object_iter_key_len(it);

		/* A bad name is not echoed back: it may be huge or hold any byte. */
		if (!field_name_valid(key, key_len))
			r = add_error(errors, "data",
				      "field names must be 1 to 64 characters of [A-Za-z0-9_.-]");
		else if (t->n_fields == 0)
			r = check_generic_value(errors, key, json_object_iter_value(it));
		else if (!field_find(t, key))
			r = add_error(errors, key, "unknown field");
		else
			r = 0;
		if (r < 0)
			return r;
	}

	form = choose_form(t, data);
	if (form == FORM_NONE || form == FORM_SEVERAL) {
		char buf[512];

		forms_reason(t, form == FORM_SEVERAL, buf, sizeof(buf));
		if ((r = add_error(errors, "data", buf)) < 0)
			return r;
	}
	r = 0;
	for (size_t i = 0; i < t->n_fields && r == 0; i++) {
		const struct cred_field *f = &t->fields[i];
		const json_t *v = json_object_get(data, f->name);
		/* A form's fields are required only in the form that was chosen. */
		bool required = f->required && (!f->form || (form >= 0 &&
						 streq(f->form, t->forms[form].name)));

		if (!v)
			r = required ? add_error(errors, f->name, "required") : 0;
		else
			r = check_field(errors, f, v);
	}

out:
	if (r < 0)
		return r;
	if (json_object_size(errors) == 0)
		return 0;
	if (ret_errors)
		*ret_errors = TAKE_PTR(errors);
	return -EINVAL;
}

static json_t *field_to_json(const struct cred_field *f)
{
	json_t *j = json_pack("{s:s, s:s, s:b, s:b, s:I, s:s, s:s, s:s}",
			      "name", f->name,
			      "kind", f->kind == CRED_FIELD_URL ? "url" : "string",
			      "required", (int)f->required,
			      "sensitive", (int)f->sensitive,
			      "max_length", (json_int_t)f->max_len,
			      "description", f->description,
			      "format", cred_field_format_name(f),
			      "accepts", cred_field_accepts(f));

	if (j && f->form && json_object_set_new(j, "form", json_string(f->form)) < 0)
		json_decref(TAKE_PTR(j));
	return j;
}

static json_t *forms_to_json(const struct cred_type *t)
{
	_cleanup_json_ json_t *forms = json_array();

	if (!forms)
		return NULL;
	for (size_t k = 0; k < t->n_forms; k++) {
		_cleanup_json_ json_t *names = json_array();

		if (!names)
			return NULL;
		for (size_t i = 0; i < t->n_fields; i++)
			if (t->fields[i].form && streq(t->fields[i].form, t->forms[k].name) &&
			    json_array_append_new(names, json_string(t->fields[i].name)) < 0)
				return NULL;
		if (json_array_append_new(forms, json_pack("{s:s, s:s, s:o}", "name", t->forms[k].name,
							    "description", t->forms[k].description,
							    "fields", TAKE_PTR(names))) < 0)
			return NULL;
	}
	return TAKE_PTR(forms);
}

json_t *cred_types_to_json(void)
{
	_cleanup_json_ json_t *types = json_array();

	if (!types)
		return NULL;
	for (size_t i = 0; i < ELEMENTSOF(cred_types); i++) {
		const struct cred_type *t = &cred_types[i];
		_cleanup_json_ json_t *fields = json_array();

		if (!fields)
			return NULL;
		for (size_t k = 0; k < t->n_fields; k++)
			if (json_array_append_new(fields, field_to_json(&t->fields[k])) < 0)
				return NULL;
		/* "o" steals the reference, even when json_pack() fails. */
		if (json_array_append_new(types, json_pack("{s:s, s:s, s:o, s:o}", "name", t->name,
							    "description", t->description,
							    "fields", TAKE_PTR(fields),
							    "forms", forms_to_json(t))) < 0)
			return NULL;
	}
	return json_pack("{s:o}", "types", TAKE_PTR(types));
}
