/* tests/unit/test_types.c: credential types and their validation.
 * The tables below restate ARCHITECTURE.md section 5 independently of
 * vaultd/types.c, so a change to the types must change both.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "common/json.h"
#include "vaultd/secrets/types.h"

struct spec_field {
	const char *name;
	const char *kind;
	bool sensitive;
	size_t max_len;
	const char *form;               /* NULL: in every form */
	bool optional;
	const char *format;             /* as published; NULL: "text" or "https-url" by kind */
};

struct spec_type {
	const char *name;
	const char *valid;              /* a valid data object */
	struct spec_field fields[6];    /* ends at name == NULL */
	const char *valid_alt;          /* a valid object in another form, or NULL */
};

#define SF(n, k, s, m) { .name = (n), .kind = (k), .sensitive = (s), .max_len = (m) }
#define SFX(n, k, s, m, fm, opt, fmt) \
	{ .name = (n), .kind = (k), .sensitive = (s), .max_len = (m), .form = (fm), .optional = (opt), \
	  .format = (fmt) }

static const struct spec_type spec[] = {
	{ .name = "tactical-rmm",
	  .valid = "{\"url\": \"https://api.example.com\", \"api_key\": \"ABCDEF0123456789\"}",
	  .fields = { SF("url", "url", false, 2048), SF("api_key", "string", true, 4096) } },
	{ .name = "connectwise-manage",
	  .valid = "{\"site\": \"api-na.myconnectwise.net\", \"company_id\": \"acme\", \"public_key\": \"Pub1\","
	  " \"private_key\": \"Priv1\", \"client_id\": \"c0ffee00-1111-2222-3333-444455556666\"}",
	  .fields = { SFX("site", "string", false, 253, NULL, false, "hostname"), SF("company_id", "string", false, 256),
	    SF("public_key", "string", false, 4096), SF("private_key", "string", true, 4096),
	    SF("client_id", "string", false, 256) } },
	{ .name = "connectwise-automate",
	  .valid = "{\"server_url\": \"https://automate.example.com:8443/cwa/api\", \"username\": \"integrator\","
	  " \"password\": \"correct horse battery staple\", \"client_id\": \"abc\"}",
	  .fields = { SF("server_url", "url", false, 2048), SF("username", "string", false, 256),
	    SF("password", "string", true, 4096), SF("client_id", "string", false, 256) } },
	{ .name = "kaseya-vsa",
	  .valid = "{\"url\": \"https://vsa.example.com\", \"username\": \"admin\", \"api_token\": \"tok\"}",
	  .fields = { SF("url", "url", false, 2048), SF("username", "string", false, 256),
	    SF("api_token", "string", true, 4096) } },
	{ .name = "autotask",
	  .valid = "{\"zone_url\": \"https://webservices5.autotask.net\", \"username\": \"api@example.com\","
	  " \"secret\": \"s3cr3t\", \"integration_code\": \"CODE42\"}",
	  .fields = { SF("zone_url", "url", false, 2048), SF("username", "string", false, 256),
	    SF("secret", "string", true, 4096), SF("integration_code", "string", true, 4096) } },
	{ .name = "prtg",
	  .valid = "{\"url\": \"https://[2001:db8::1]:8443/\", \"username\": \"prtgadmin\", \"passhash\": \"1234567890\"}",
	  .fields = { SF("url", "url", false, 2048), SFX("username", "string", false, 256, "passhash", false, NULL),
	    SFX("passhash", "string", true, 4096, "passhash", false, NULL), SFX("api_token", "string", true, 4096, "api-token", false, NULL) },
	  .valid_alt = "{\"url\": \"https://prtg.example.com\", \"api_token\": \"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567\"}" },
	{ .name = "solarwinds-orion",
	  .valid = "{\"url\": \"https://orion.example.com:17774\", \"username\": \"swis\", \"password\": \"pw\","
	  " \"verify_tls_fingerprint\": \"" "0123456789abcdef0123456789abcdef0123456789ABCDEF0123456789abcdef" "\"}",
	  .fields = { SF("url", "url", false, 2048), SF("username", "string", false, 256),
	    SF("password", "string", true, 4096),
	    SFX("verify_tls_fingerprint", "string", false, 95, NULL, true, "sha256-fingerprint") } },
	{ .name = "nable-ncentral",
	  .valid = "{\"server_url\": \"https://ncentral.example.com\","
	  " \"api_token\": \"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl\"}",
	  .fields = { SF("server_url", "url", false, 2048), SFX("api_token", "string", true, 4096, NULL, false, "jwt") } },
	{ .name = "slack",
	  .valid = "{\"bot_token\": \"xoxb-1234-5678-AbCdEf\", \"signing_secret\": \"8f742231b10e8888abcd99aaabbb85a5\"}",
	  .fields = { SFX("bot_token", "string", true, 4096, NULL, false, "slack-bot-token"),
	    SFX("signing_secret", "string", true, 32, NULL, false, "hex32") } },
	{ .name = "slack-webhook",
	  .valid = "{\"url\": \"https://hooks.slack.com/services/T000/B000/XXXX\"}",
	  .fields = { SFX("url", "url", true, 2048, NULL, false, "slack-webhook-url") } },
	{ .name = "teams",
	  .valid = "{\"tenant_id\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\","
	  " \"client_id\": \"0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D\", \"client_secret\": \"x~y.z\"}",
	  .fields = { SFX("tenant_id", "string", false, 36, NULL, false, "guid"),
	    SFX("client_id", "string", false, 36, NULL, false, "guid"),
	    SF("client_secret", "string", true, 4096) } },
	{ .name = "teams-webhook",
	  .valid = "{\"url\": \"https://prod-12.westus.logic.azure.com:443/workflows/abc/triggers/manual\"}",
	  .fields = { SF("url", "url", true, 2048) } },
	{ .name = "generic",
	  .valid = "{\"key\": \"-----BEGIN KEY-----\\nAAAA\\n-----END KEY-----\\n\", \"a.b-c_D9\": \"x\\ty\"}",
	  .fields = { { .name = NULL } } },
};

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON at %d: %s", e.position, e.text);
	return j;
}

static const struct spec_type *spec_of(const char *name)
{
	for (size_t i = 0; i < ELEMENTSOF(spec); i++)
		if (streq(spec[i].name, name))
			return &spec[i];
	fail_msg("no spec for %s", name);
	return NULL;
}

static const struct cred_type *find(const char *name)
{
	const struct cred_type *t = cred_type_find(name);

	assert_non_null(t);
	return t;
}

/* Validates and compares the errors object with 'expected' (JSON text). */
static void expect_errors_obj(const char *type, const json_t *data, const char *expected)
{
	_cleanup_json_ json_t *want = parse(expected);
	_cleanup_json_ json_t *got = NULL;
	int r = cred_type_validate(find(type), data, &got);

	if (r != -EINVAL || !got) {
		char *d = json_dumps(data, JSON_ENCODE_ANY);
		print_error("%s %s: r = %d, expected %s\n", type, d ? d : "?", r, expected);
		json_secure_free(d);
		fail();
	}
	if (!json_equal(want, got)) {
		char *g = json_dumps(got, 0);
		print_error("%s: got %s, expected %s\n", type, g ? g : "?", expected);
		json_secure_free(g);
		fail();
	}
}

static void expect_errors(const char *type, const char *data, const char *expected)
{
	_cleanup_json_ json_t *d = parse(data);

	expect_errors_obj(type, d, expected);
}

static void expect_valid_obj(const char *type, const json_t *data)
{
	json_t *sentinel = (json_t *)0x1, *errors = sentinel;
	int r = cred_type_validate(find(type), data, &errors);

	if (r != 0) {
		char *e = errors != sentinel ? json_dumps(errors, 0) : NULL;
		char *d = json_dumps(data, JSON_ENCODE_ANY);
		print_error("%s %s: r = %d, errors %s\n", type, d ? d : "?", r, e ? e : "-");
		json_secure_free(e);
		json_secure_free(d);
		if (errors != sentinel)
			json_decref(errors);
		fail();
	}
	assert_ptr_equal(errors, sentinel);     /* untouched on success */
}

static void expect_valid(const char *type, const char *data)
{
	_cleanup_json_ json_t *d = parse(data);

	expect_valid_obj(type, d);
}

/* Valid example of 'type' with field set to v (stolen), or removed if v is NULL. */
static json_t *example_with(const struct spec_type *s, const char *field, json_t *v)
{
	json_t *d = parse(s->valid);

	/* A field of another form than the main example's: use the other example. */
	if (s->valid_alt && !json_object_get(d, field)) {
		json_t *alt = parse(s->valid_alt);

		if (json_object_get(alt, field)) {
			json_decref(d);
			d = alt;
		} else
			json_decref(alt);
	}

	if (v)
		assert_int_equal(json_object_set_new(d, field, v), 0);
	else
		assert_int_equal(json_object_del(d, field), 0);
	return d;
}

/* {"<field>": "<reason>"} as JSON text. */
static const char *one_error(char *buf, size_t size, const char *field, const char *reason)
{
	int n = snprintf(buf, size, "{\"%s\": \"%s\"}", field, reason);

	assert_true(n > 0 && (size_t)n < size);
	return buf;
}

static json_t *filled(size_t n, char c)
{
	char *p = malloc(n);
	json_t *j;

	assert_non_null(p);
	memset(p, c, n);
	j = json_stringn(p, n);
	free(p);
	assert_non_null(j);
	return j;
}

static const struct cred_field *impl_field(const struct spec_type *s, const char *name)
{
	const struct cred_type *t = find(s->name);

	for (size_t i = 0; i < t->n_fields; i++)
		if (streq(t->fields[i].name, name))
			return &t->fields[i];
	fail_msg("%s has no field %s", s->name, name);
	return NULL;
}

#define FOR_EACH_TYPED_FIELD(s, f)                                                              \
	for (const struct spec_type *s = spec; s < spec + ELEMENTSOF(spec); s++)                \
		for (const struct spec_field *f = s->fields; f->name; f++)

static void test_valid_examples(void **state)
{
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(spec); i++) {
		expect_valid(spec[i].name, spec[i].valid);
		if (spec[i].valid_alt)
			expect_valid(spec[i].name, spec[i].valid_alt);
	}
	/* ret_errors may be NULL when only the verdict matters. */
	{
		_cleanup_json_ json_t *d = parse(spec[0].valid);
		assert_int_equal(cred_type_validate(find(spec[0].name), d, NULL), 0);
	}
}

static void test_lookup(void **state)
{
	(void)state;

	assert_int_equal(cred_types_count(), ELEMENTSOF(spec));
	for (size_t i = 0; i < ELEMENTSOF(spec); i++) {
		const struct cred_type *t = cred_type_find(spec[i].name);

		assert_non_null(t);
		assert_string_equal(t->name, spec[i].name);
		assert_ptr_equal(cred_type_at(i), t);   /* same order as the spec */
		assert_non_null(t->description);
		assert_true(t->description[0] != '\0');
	}
	assert_null(cred_type_at(ELEMENTSOF(spec)));
	assert_null(cred_type_at((size_t)-1));
	assert_null(cred_type_find(NULL));
	assert_null(cred_type_find(""));
	assert_null(cred_type_find("Generic"));
	assert_null(cred_type_find("slack "));
	assert_null(cred_type_find("tactical"));
}

/* The table matches the spec: names, order, kind, required, sensitive, limits. */
static void test_table_matches_spec(void **state)
{
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(spec); i++) {
		const struct cred_type *t = find(spec[i].name);
		size_t n = 0;

		for (const struct spec_field *f = spec[i].fields; f->name; f++, n++) {
			assert_true(n < t->n_fields);
			assert_string_equal(t->fields[n].name, f->name);
			assert_string_equal(t->fields[n].kind == CRED_FIELD_URL ? "url" : "string", f->kind);
			assert_int_equal(t->fields[n].required, !f->optional);
			assert_int_equal(t->fields[n].sensitive, f->sensitive);
			assert_int_equal(t->fields[n].max_len, f->max_len);
			assert_non_null(t->fields[n].description);
			if (f->form)
				assert_string_equal(t->fields[n].form, f->form);
			else
				assert_null(t->fields[n].form);
			assert_string_equal(cred_field_format_name(&t->fields[n]),
					    f->format ?: (streq(f->kind, "url") ? "https-url" : "text"));
			assert_true(cred_field_accepts(&t->fields[n])[0] != '\0');
		}
		assert_int_equal(t->n_fields, n);
	}
	assert_int_equal(find("generic")->n_fields, 0);
}

static void test_required_missing(void **state)
{
	char want[256];
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		_cleanup_json_ json_t *d = example_with(s, f->name, NULL);

		if (f->optional)
			expect_valid_obj(s->name, d);
		else if (f->form)
			continue;       /* forms: test_prtg_forms */
		else
			expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name, "required"));
	}
	expect_errors("tactical-rmm", "{}", "{\"url\": \"required\", \"api_key\": \"required\"}");
	expect_errors("teams", "{}",
		      "{\"tenant_id\": \"required\", \"client_id\": \"required\", \"client_secret\": \"required\"}");
}

static void test_non_string(void **state)
{
	char want[256];
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		json_t *bad[] = { json_integer(1), json_null(), json_true(), json_object(),
				  json_array(), json_real(1.5) };

		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			_cleanup_json_ json_t *d = example_with(s, f->name, bad[i]);

			expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name, "must be a string"));
		}
	}
}

static void test_empty(void **state)
{
	char want[256];
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		_cleanup_json_ json_t *d = example_with(s, f->name, json_string(""));

		expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name, "must not be empty"));
	}
}

static void test_too_long(void **state)
{
	char want[256], reason[64];
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		_cleanup_json_ json_t *d = example_with(s, f->name, filled(f->max_len + 1, 'a'));

		snprintf(reason, sizeof(reason), "must be at most %zu bytes long", f->max_len);
		expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name, reason));
	}

	/* Exactly at the limit is fine. */
	FOR_EACH_TYPED_FIELD(s, f) {
		_cleanup_json_ json_t *d = NULL;

		if (impl_field(s, f->name)->kind != CRED_FIELD_STRING ||
		    impl_field(s, f->name)->format != CRED_FORMAT_NONE)
			continue;                       /* URLs and formats: their own tests */
		d = example_with(s, f->name, filled(f->max_len, 'a'));
		expect_valid_obj(s->name, d);
	}
	{
		/* A 2048-byte URL. */
		char url[2049] = "https://h.example.com/";
		size_t n = strlen(url);
		_cleanup_json_ json_t *d = NULL;

		memset(url + n, 'p', sizeof(url) - 1 - n);
		url[sizeof(url) - 1] = '\0';
		d = example_with(&spec[0], "url", json_string(url));
		expect_valid_obj("tactical-rmm", d);
	}
}

static void test_control_characters(void **state)
{
	static const char *const bad[] = { "a\x01z", "a\nz", "a\tz", "a\rz", "a\x7fz", "a\x1b[31mz",
					   "https://h.example.com/\n" };
	char want[256];
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			_cleanup_json_ json_t *d = example_with(s, f->name, json_string(bad[i]));

			expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name,
								"must not contain control characters"));
		}
		{
			/* An embedded NUL must not hide what follows it. */
			_cleanup_json_ json_t *d = example_with(s, f->name, json_stringn("a\0z", 3));

			expect_errors_obj(s->name, d, one_error(want, sizeof(want), f->name,
								"must not contain control characters"));
		}
	}
}

static void url_case(const char *url, const char *reason)
{
	_cleanup_json_ json_t *d = example_with(&spec[0], "url", json_string(url));
	char want[256];

	if (!reason)
		expect_valid_obj("tactical-rmm", d);
	else
		expect_errors_obj("tactical-rmm", d, one_error(want, sizeof(want), "url", reason));
}

static void test_urls(void **state)
{
	static const char *const not_https = "must be an https:// URL";
	static const char *const creds = "URL must not contain credentials";
	static const char *const port = "URL port must be a number from 1 to 65535";
	static const char *const host = "URL host is not a valid host name";
	static const char *const v6 = "URL host is not a valid IPv6 address";
	static const char *const nohost = "URL has no host";
	static const char *const ws = "URL must not contain spaces or non-ASCII characters";
	(void)state;

	url_case("https://rmm.example.com", NULL);
	url_case("https://rmm.example.com/", NULL);
	url_case("https://rmm.example.com:1/api/v2?x=1&y=%20#frag", NULL);
	url_case("https://rmm.example.com:65535", NULL);
	url_case("https://10.0.0.5:8443", NULL);
	url_case("https://localhost", NULL);
	url_case("https://[::1]", NULL);
	url_case("https://[2001:db8::1]:443/x", NULL);
	url_case("https://[::ffff:192.0.2.1]/", NULL);
	url_case("https://rmm.example.com/path/with@sign", NULL);       /* '@' after the authority */
	url_case("https://rmm.example.com?q=a@b", NULL);

	url_case("http://rmm.example.com", not_https);
	url_case("HTTPS://rmm.example.com", not_https);
	url_case("ftp://rmm.example.com", not_https);
	url_case("rmm.example.com", not_https);
	url_case("https:/rmm.example.com", not_https);
	url_case("javascript:alert(1)", not_https);
	url_case(" https://rmm.example.com", not_https);

	url_case("https://user:pass@rmm.example.com", creds);
	url_case("https://user@rmm.example.com/", creds);
	url_case("https://@rmm.example.com", creds);
	url_case("https://rmm.example.com\\@evil.example", creds);
	url_case("https://rmm.example.com:443@evil.example/", creds);

	url_case("https://rmm.example.com:0", port);
	url_case("https://rmm.example.com:65536", port);
	url_case("https://rmm.example.com:99999/", port);
	url_case("https://rmm.example.com:123456", port);
	url_case("https://rmm.example.com:", port);
	url_case("https://rmm.example.com:/x", port);
	url_case("https://rmm.example.com:-1", port);
	url_case("https://rmm.example.com:44a", port);
	url_case("https://rmm.example.com:443:443", port);
	url_case("https://[::1]:0", port);

	url_case("https://", nohost);
	url_case("https:///path", nohost);
	url_case("https://:443", nohost);
	url_case("https://?x", nohost);

	url_case("https://exa_mple.com", host);
	url_case("https://-rmm.example.com", host);
	url_case("https://rmm-.example.com", host);
	url_case("https://rmm..example.com", host);
	url_case("https://.example.com", host);
	url_case("https://rmm.example.com.", host);
	url_case("https://rmm.exa%6dple.com", host);
	url_case("https://a:b:c", port);

	url_case("https://[::1", v6);
	url_case("https://[zz::1]", v6);
	url_case("https://[]", v6);
	url_case("https://[::1]x", v6);
	url_case("https://[fe80::1%25eth0]", v6);
	url_case("https://[127.0.0.1]", v6);

	url_case("https://rmm.example.com/a b", ws);
	url_case("https://rmm example.com", ws);
	url_case("https://r\xc3\xa9m.example.com", ws);
	url_case("https://rmm.example.com/caf\xc3\xa9", ws);
}

static void test_url_fields_share_rules(void **state)
{
	(void)state;

	expect_errors("connectwise-automate",
		      "{\"server_url\": \"http://a.example.com\", \"username\": \"u\","
		      " \"password\": \"p\", \"client_id\": \"c\"}",
		      "{\"server_url\": \"must be an https:// URL\"}");
	expect_errors("kaseya-vsa",
		      "{\"url\": \"https://u:p@vsa.example.com\", \"username\": \"u\", \"api_token\": \"t\"}",
		      "{\"url\": \"URL must not contain credentials\"}");
	expect_errors("prtg", "{\"url\": \"https://prtg:70000\", \"username\": \"u\", \"passhash\": \"1\"}",
		      "{\"url\": \"URL port must be a number from 1 to 65535\"}");
}

static void site_case(const char *site, bool ok)
{
	_cleanup_json_ json_t *d = example_with(spec_of("connectwise-manage"), "site", json_string(site));

	if (ok)
		expect_valid_obj("connectwise-manage", d);
	else
		expect_errors_obj("connectwise-manage", d,
				  "{\"site\": \"must be a host name such as api-na.myconnectwise.net, not a URL\"}");
}

static void test_connectwise_site(void **state)
{
	char label[80];
	(void)state;

	site_case("api-na.myconnectwise.net", true);
	site_case("api-eu.myconnectwise.net", true);
	site_case("cw01", true);
	site_case("CW.Example.COM", true);
	site_case("https://api-na.myconnectwise.net", false);
	site_case("api-na.myconnectwise.net/", false);
	site_case("api-na.myconnectwise.net:443", false);
	site_case("api-na.myconnectwise.net.", false);
	site_case(".myconnectwise.net", false);
	site_case("api..myconnectwise.net", false);
	site_case("-api.myconnectwise.net", false);
	site_case("api-.myconnectwise.net", false);
	site_case("api_na.myconnectwise.net", false);
	site_case("api na.myconnectwise.net", false);
	site_case("u@api-na.myconnectwise.net", false);

	memset(label, 'a', 63);
	strcpy(label + 63, ".example.com");
	site_case(label, true);                 /* 63-byte label */
	memset(label, 'a', 64);
	strcpy(label + 64, ".example.com");
	site_case(label, false);
}

static void test_slack(void **state)
{
	static const char *const tok = "must be a Slack bot token starting with xoxb-";
	static const char *const hex = "must be 32 hexadecimal digits";
	char want[256];
	(void)state;

#define SLACK(t, s) "{\"bot_token\": \"" t "\", \"signing_secret\": \"" s "\"}"
#define SECRET_OK "0123456789abcdef0123456789ABCDEF"
#define BAD_TOKEN one_error(want, sizeof(want), "bot_token", tok)
	expect_valid("slack", SLACK("xoxb-1", SECRET_OK));
	expect_errors("slack", SLACK("xoxp-1234-5678", SECRET_OK), BAD_TOKEN);
	expect_errors("slack", SLACK("xoxa-1234", SECRET_OK), BAD_TOKEN);
	expect_errors("slack", SLACK("XOXB-1234", SECRET_OK), BAD_TOKEN);
	expect_errors("slack", SLACK("xoxb-", SECRET_OK), BAD_TOKEN);
	expect_errors("slack", SLACK("xoxb-12 34", SECRET_OK), BAD_TOKEN);
	expect_errors("slack", SLACK(" xoxb-1234", SECRET_OK), BAD_TOKEN);

	expect_errors("slack", SLACK("xoxb-1", "0123456789abcdef0123456789abcde"),
		      one_error(want, sizeof(want), "signing_secret", hex));
	expect_errors("slack", SLACK("xoxb-1", "0123456789abcdef0123456789abcdeg"),
		      one_error(want, sizeof(want), "signing_secret", hex));
	expect_errors("slack", SLACK("xoxb-1", "0123456789abcdef 123456789abcdef"),
		      one_error(want, sizeof(want), "signing_secret", hex));
	expect_errors("slack", SLACK("xoxb-1", "0123456789abcdef0123456789abcdef0"),
		      "{\"signing_secret\": \"must be at most 32 bytes long\"}");

	/* Both wrong: both reported. */
	expect_errors("slack", SLACK("xoxp-1", "nothex"),
		      "{\"bot_token\": \"must be a Slack bot token starting with xoxb-\","
		      " \"signing_secret\": \"must be 32 hexadecimal digits\"}");
#undef SLACK
#undef SECRET_OK
#undef BAD_TOKEN
}

static void guid_case(const char *field, const char *guid, const char *reason)
{
	_cleanup_json_ json_t *d = example_with(spec_of("teams"), field, json_string(guid));
	char want[256];

	if (!reason)
		expect_valid_obj("teams", d);
	else
		expect_errors_obj("teams", d, one_error(want, sizeof(want), field, reason));
}

static void test_teams_guid(void **state)
{
	static const char *const g = "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)";
	(void)state;

	guid_case("tenant_id", "00000000-0000-0000-0000-000000000000", NULL);
	guid_case("tenant_id", "ABCDEFAB-cdef-0123-4567-89abcdefABCD", NULL);
	guid_case("client_id", "72f988bf-86f1-41af-91ab-2d7cd011db47", NULL);

	guid_case("tenant_id", "72f988bf86f141af91ab2d7cd011db47", g);
	guid_case("tenant_id", "72f988bf-86f1-41af-91ab-2d7cd011db4", g);
	guid_case("tenant_id", "72f988bf-86f141af-91ab-2d7cd011db47-", g);
	guid_case("tenant_id", "72f988b-f86f1-41af-91ab-2d7cd011db47", g);
	guid_case("tenant_id", "72f988bg-86f1-41af-91ab-2d7cd011db47", g);
	guid_case("client_id", " 2f988bf-86f1-41af-91ab-2d7cd011db47", g);
	guid_case("client_id", "contoso.onmicrosoft.com", g);
	guid_case("client_id", "{72f988bf-86f1-41af-91ab-2d7cd011db47}",
		  "must be at most 36 bytes long");
}

/* One valid and one invalid value for every format a field uses, checked
 * through a real field of a real type. test_every_format_has_a_case fails
 * when a format is added to a type without a case here. */
static const struct format_case {
	const char *format, *type, *field, *valid, *invalid, *reason;
} format_cases[] = {
	{ "text", "tactical-rmm", "api_key", "k3y with spaces", "a\x01", "must not contain control characters" },
	{ "https-url", "teams-webhook", "url", "https://contoso.webhook.office.com/webhookb2/x",
	  "http://contoso.webhook.office.com/webhookb2/x", "must be an https:// URL" },
	{ "hostname", "connectwise-manage", "site", "api-eu.myconnectwise.net", "https://api-eu.myconnectwise.net",
	  "must be a host name such as api-na.myconnectwise.net, not a URL" },
	{ "guid", "teams", "tenant_id", "72f988bf-86f1-41af-91ab-2d7cd011db47", "72f988bf86f141af91ab2d7cd011db47",
	  "must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)" },
	{ "hex32", "slack", "signing_secret", "0123456789abcdef0123456789ABCDEF", "0123456789abcdef0123456789abcdeg",
	  "must be 32 hexadecimal digits" },
	{ "slack-bot-token", "slack", "bot_token", "xoxb-1-2-x", "xoxp-1-2-x",
	  "must be a Slack bot token starting with xoxb-" },
	{ "jwt", "nable-ncentral", "api_token", "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.AbC-_9",
	  "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0", "must be a JSON Web Token (three base64url parts joined by dots)" },
	{ "sha256-fingerprint", "solarwinds-orion", "verify_tls_fingerprint",
	  "01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF",
	  "0123456789abcdef0123456789abcdef", "must be a SHA-256 fingerprint (64 hex digits, colons allowed)" },
	{ "slack-webhook-url", "slack-webhook", "url", "https://hooks.slack.com/services/T1/B2/c3",
	  "https://hooks.slack.com.evil.example/services/T1/B2/c3",
	  "must be a Slack webhook URL, https://hooks.slack.com/services/..." },
};

static void field_case(const char *type, const char *field, const char *value, const char *reason)
{
	_cleanup_json_ json_t *d = example_with(spec_of(type), field, json_string(value));
	char want[512];

	if (!reason)
		expect_valid_obj(type, d);
	else
		expect_errors_obj(type, d, one_error(want, sizeof(want), field, reason));
}

static void test_format_cases(void **state)
{
	(void)state;

	for (const struct format_case *c = format_cases; c < format_cases + ELEMENTSOF(format_cases); c++) {
		const struct cred_field *f = impl_field(spec_of(c->type), c->field);

		assert_string_equal(cred_field_format_name(f), c->format);
		field_case(c->type, c->field, c->valid, NULL);
		field_case(c->type, c->field, c->invalid, c->reason);
	}
}

static void test_every_format_has_a_case(void **state)
{
	(void)state;

	for (size_t i = 0; i < cred_types_count(); i++) {
		const struct cred_type *t = cred_type_at(i);

		for (size_t k = 0; k < t->n_fields; k++) {
			const char *name = cred_field_format_name(&t->fields[k]);
			bool found = false;

			for (size_t c = 0; c < ELEMENTSOF(format_cases); c++)
				found |= streq(format_cases[c].format, name);
			if (!found)
				fail_msg("%s.%s: format %s has no case in format_cases", t->name,
					 t->fields[k].name, name);
		}
	}
}

static void test_jwt(void **state)
{
	static const char *const bad = "must be a JSON Web Token (three base64url parts joined by dots)";
	static const char *const ok[] = {
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl",
		"eyJ.eyJ.s",
		"eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJpYXQiOjE3MDAwMDAwMDB9.-_-_AZaz09",
	};
	static const char *const no[] = {
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.",             /* unsigned ("alg": "none") */
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ",              /* two parts */
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2ln.ZXh0cmE", /* four parts (a JWE has five) */
		"eyJhbGciOiJIUzI1NiJ9..c2lnbmF0dXJl",
		".eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl",
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl=", /* padding */
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2ln+bmF0/dXJl", /* base64, not base64url */
		"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2ln bmF0",
		"abc.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl",                  /* header is not a JSON object */
		"eyJhbGciOiJIUzI1NiJ9.W10.c2lnbmF0dXJl",                /* payload "[]" */
		"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhcGkifQ.c2lnbmF0dXJl",
		"ey.eyJ.s",
		"0123456789abcdef",
	};
	(void)state;

	for (size_t i = 0; i < ELEMENTSOF(ok); i++)
		field_case("nable-ncentral", "api_token", ok[i], NULL);
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		field_case("nable-ncentral", "api_token", no[i], bad);
}

static void test_sha256_fingerprint(void **state)
{
	static const char *const bad = "must be a SHA-256 fingerprint (64 hex digits, colons allowed)";
	static const char *const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
	static const char *const pairs =
		"01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef";
	char v[128];
	(void)state;

	field_case("solarwinds-orion", "verify_tls_fingerprint", hex64, NULL);
	field_case("solarwinds-orion", "verify_tls_fingerprint", pairs, NULL);

	/* One digit short, one too many, one non-hex digit, in both spellings. */
	snprintf(v, sizeof(v), "%.63s", hex64);
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	snprintf(v, sizeof(v), "%sa", hex64);
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	snprintf(v, sizeof(v), "%.63sg", hex64);
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	snprintf(v, sizeof(v), "%.94sg", pairs);
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	snprintf(v, sizeof(v), "%.92s", pairs);
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	/* Colons in the wrong places, other separators, a SHA-1 fingerprint. */
	snprintf(v, sizeof(v), "%s", pairs);
	v[2] = '-';
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	memmove(v + 1, v + 2, strlen(v + 2) + 1);       /* "0:1:23..." shape: 94 bytes */
	v[1] = ':';
	field_case("solarwinds-orion", "verify_tls_fingerprint", v, bad);
	field_case("solarwinds-orion", "verify_tls_fingerprint",
		   "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67", bad);
	field_case("solarwinds-orion", "verify_tls_fingerprint",
		   "SHA256:0123456789abcdef0123456789abcdef0123456789abcdef01234567", bad);
	field_case("solarwinds-orion", "verify_tls_fingerprint",
		   "01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:01:23:45:67:89:ab:cd:ef:",
		   "must be at most 95 bytes long");
	/* The fingerprint is optional, and the port SWIS listens on is a URL like any other. */
	{
		_cleanup_json_ json_t *d = example_with(spec_of("solarwinds-orion"), "verify_tls_fingerprint", NULL);
		expect_valid_obj("solarwinds-orion", d);
	}
	field_case("solarwinds-orion", "url", "https://orion.example.com:17774/SolarWinds/InformationService/v3/Json",
		   NULL);
	field_case("solarwinds-orion", "url", "http://orion.example.com:17774", "must be an https:// URL");
}

static void test_webhooks(void **state)
{
	static const char *const bad = "must be a Slack webhook URL, https://hooks.slack.com/services/...";
	(void)state;

	field_case("slack-webhook", "url", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
		   NULL);
	field_case("slack-webhook", "url", "https://hooks.slack.com/services/", bad);
	field_case("slack-webhook", "url", "https://hooks.slack.com/workflows/T1/A2/3/x", bad);
	field_case("slack-webhook", "url", "https://HOOKS.slack.com/services/T1/B2/c3", bad);
	field_case("slack-webhook", "url", "https://hooks.slack.com:8443/services/T1/B2/c3", bad);
	field_case("slack-webhook", "url", "https://hooks.slack.com.evil.example/services/T1", bad);
	field_case("slack-webhook", "url", "https://evil.example/https://hooks.slack.com/services/T1", bad);
	/* The general URL rules come first, with their own reasons. */
	field_case("slack-webhook", "url", "http://hooks.slack.com/services/T1/B2/c3", "must be an https:// URL");
	field_case("slack-webhook", "url", "https://x@hooks.slack.com/services/T1/B2/c3",
		   "URL must not contain credentials");
	field_case("slack-webhook", "url", "https://hooks.slack.com/services/T1/B2/c 3",
		   "URL must not contain spaces or non-ASCII characters");

	/* Teams: any https URL (Office 365 connectors and Power Automate workflows differ). */
	field_case("teams-webhook", "url", "https://contoso.webhook.office.com/webhookb2/a@b/IncomingWebhook/c/d", NULL);
	field_case("teams-webhook", "url", "https://prod-00.westeurope.logic.azure.com:443/workflows/x", NULL);
	field_case("teams-webhook", "url", "http://contoso.webhook.office.com/webhookb2/x", "must be an https:// URL");

	/* The URL is the secret. */
	assert_true(cred_field_is_sensitive(find("slack-webhook"), "url"));
	assert_true(cred_field_is_sensitive(find("teams-webhook"), "url"));
}

static void test_prtg_forms(void **state)
{
	static const char *const none =
		"needs exactly one of: api_token (an API key, sent as apitoken), "
		"or username and passhash (a user name and its passhash)";
	static const char *const both =
		"fields of more than one form; use exactly one of: api_token (an API key, sent as apitoken), "
		"or username and passhash (a user name and its passhash)";
	char want[512];
	(void)state;

	expect_valid("prtg", "{\"url\": \"https://prtg.example.com\", \"username\": \"u\", \"passhash\": \"1\"}");
	expect_valid("prtg", "{\"url\": \"https://prtg.example.com\", \"api_token\": \"T\"}");

	/* Neither form. */
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\"}", one_error(want, sizeof(want), "data", none));
	/* Both forms, complete or not. */
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\", \"username\": \"u\", \"passhash\": \"1\","
			      " \"api_token\": \"T\"}", one_error(want, sizeof(want), "data", both));
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\", \"username\": \"u\", \"api_token\": \"T\"}",
		      one_error(want, sizeof(want), "data", both));
	/* One form, half filled: the missing field is named. */
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\", \"username\": \"u\"}",
		      "{\"passhash\": \"required\"}");
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\", \"passhash\": \"1\"}",
		      "{\"username\": \"required\"}");
	/* Other problems are reported alongside. */
	expect_errors("prtg", "{\"url\": \"http://prtg.example.com\"}",
		      "{\"data\": \"needs exactly one of: api_token (an API key, sent as apitoken), "
		      "or username and passhash (a user name and its passhash)\", \"url\": \"must be an https:// URL\"}");
	expect_errors("prtg", "{\"username\": \"u\", \"passhash\": \"1\"}", "{\"url\": \"required\"}");
	expect_errors("prtg", "{\"url\": \"https://prtg.example.com\", \"api_token\": \"\"}",
		      "{\"api_token\": \"must not be empty\"}");

	/* The reason names every form whole, for any type with forms: it is not cut short. */
	for (size_t i = 0; i < cred_types_count(); i++) {
		const struct cred_type *t = cred_type_at(i);
		_cleanup_json_ json_t *errors = NULL, *d = json_object();
		const char *r;
		char tail[256];

		if (!t->n_forms)
			continue;
		assert_int_equal(cred_type_validate(t, d, &errors), -EINVAL);
		r = json_string_value(json_object_get(errors, "data"));
		assert_non_null(r);
		snprintf(tail, sizeof(tail), "(%s)", t->forms[t->n_forms - 1].description);
		assert_true(strlen(r) > strlen(tail));
		assert_string_equal(r + strlen(r) - strlen(tail), tail);
	}

	/* The forms as published. */
	{
		const struct cred_type *t = find("prtg");

		assert_int_equal(t->n_forms, 2);
		assert_string_equal(t->forms[0].name, "api-token");
		assert_string_equal(t->forms[1].name, "passhash");
	}
	for (size_t i = 0; i < cred_types_count(); i++)
		if (!streq(cred_type_at(i)->name, "prtg"))
			assert_int_equal(cred_type_at(i)->n_forms, 0);
}

static void test_unknown_fields(void **state)
{
	static const char *const bad_name =
		"field names must be 1 to 64 characters of [A-Za-z0-9_.-]";
	char want[256];
	(void)state;

	for (size_t i = 0; i + 1 < ELEMENTSOF(spec); i++) {
		_cleanup_json_ json_t *d = example_with(&spec[i], "verify_tls", json_string("yes"));

		expect_errors_obj(spec[i].name, d, "{\"verify_tls\": \"unknown field\"}");
	}
	/* Case matters. */
	{
		_cleanup_json_ json_t *d = example_with(&spec[0], "URL", json_string("https://x.example.com"));
		expect_errors_obj("tactical-rmm", d, "{\"URL\": \"unknown field\"}");
	}
	/* A name that is not even a valid field name is not echoed back. */
	{
		_cleanup_json_ json_t *d = example_with(&spec[0], "bad name", json_string("x"));
		expect_errors_obj("tactical-rmm", d, one_error(want, sizeof(want), "data", bad_name));
	}
	{
		_cleanup_json_ json_t *d = parse(spec[0].valid);

		/* "url\0x" must not pass for "url". */
		assert_int_equal(json_object_setn_new(d, "url\0x", 5, json_string("https://b.example.com")), 0);
		expect_errors_obj("tactical-rmm", d, one_error(want, sizeof(want), "data", bad_name));
	}
	/* More than 64 fields: refused as a whole, the errors object stays small. */
	{
		_cleanup_json_ json_t *d = parse(spec[0].valid);
		char k[16];

		for (int i = 0; i < 63; i++) {
			snprintf(k, sizeof(k), "x%d", i);
			assert_int_equal(json_object_set_new(d, k, json_string("v")), 0);
		}
		expect_errors_obj("tactical-rmm", d, "{\"data\": \"must have at most 64 fields\"}");
	}
}

static void test_not_an_object(void **state)
{
	static const char *const want = "{\"data\": \"must be a JSON object\"}";
	static const char *const bad[] = { "[]", "[{\"url\": \"https://x.example.com\"}]", "\"x\"",
					   "1", "null", "true" };
	(void)state;

	for (size_t t = 0; t < ELEMENTSOF(spec); t++) {
		for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
			_cleanup_json_ json_t *d = json_loads(bad[i], JSON_DECODE_ANY, NULL);

			assert_non_null(d);
			expect_errors_obj(spec[t].name, d, want);
		}
		expect_errors_obj(spec[t].name, NULL, want);
	}
}

static void test_all_bad_fields_reported(void **state)
{
	(void)state;

	expect_errors("tactical-rmm", "{\"url\": \"http://x.example.com\", \"api_key\": \"\"}",
		      "{\"url\": \"must be an https:// URL\", \"api_key\": \"must not be empty\"}");
	expect_errors("tactical-rmm", "{\"url\": 1, \"extra\": \"x\"}",
		      "{\"url\": \"must be a string\", \"api_key\": \"required\", \"extra\": \"unknown field\"}");
	expect_errors("connectwise-manage",
		      "{\"site\": \"https://x\", \"company_id\": \"\", \"public_key\": 5, \"other\": \"v\"}",
		      "{\"site\": \"must be a host name such as api-na.myconnectwise.net, not a URL\","
		      " \"company_id\": \"must not be empty\", \"public_key\": \"must be a string\","
		      " \"private_key\": \"required\", \"client_id\": \"required\", \"other\": \"unknown field\"}");
	expect_errors("teams", "{\"tenant_id\": \"x\", \"client_id\": \"y\", \"client_secret\": \"z\"}",
		      "{\"tenant_id\": \"must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\","
		      " \"client_id\": \"must be a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)\"}");
}

/* Reasons never quote the submitted value. */
static void test_reasons_do_not_echo(void **state)
{
	static const char *const marker = "ZZMARKERZZ";
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f) {
		static const char *const vals[] = { "http://ZZMARKERZZ.example.com", "ZZMARKERZZ\x01",
						    "xoxp-ZZMARKERZZ", "ZZMARKERZZ ZZMARKERZZ" };

		for (size_t i = 0; i < ELEMENTSOF(vals); i++) {
			_cleanup_json_ json_t *d = example_with(s, f->name, json_string(vals[i]));
			_cleanup_json_ json_t *errors = NULL;
			char *dump;
			int r = cred_type_validate(find(s->name), d, &errors);

			if (r == 0)
				continue;
			assert_int_equal(r, -EINVAL);
			dump = json_dumps(errors, 0);
			assert_non_null(dump);
			assert_null(strstr(dump, marker));
			json_secure_free(dump);
		}
	}
}

static void test_generic(void **state)
{
	static const char *const bad_name =
		"field names must be 1 to 64 characters of [A-Za-z0-9_.-]";
	char want[256], k[80];
	(void)state;

	expect_valid("generic", "{\"x\": \"y\"}");
	expect_valid("generic", "{\"pem\": \"-----BEGIN PRIVATE KEY-----\\nMIIE\\tx\\n"
				"-----END PRIVATE KEY-----\\n\"}");
	/* Generic values are not interpreted: no URL rules, any UTF-8. */
	expect_valid("generic", "{\"url\": \"http://not-checked.example\", \"pw\": \"p\\u00e4ss w\\u00f6rd\"}");
	expect_valid("generic", "{\".\": \"a\", \"..\": \"b\", \"-\": \"c\", \"_\": \"d\"}");

	expect_errors("generic", "{}", "{\"data\": \"must have at least one field\"}");

	/* 64 fields pass, 65 do not. */
	{
		_cleanup_json_ json_t *d = json_object();

		for (int i = 0; i < 64; i++) {
			snprintf(k, sizeof(k), "field%d", i);
			assert_int_equal(json_object_set_new(d, k, json_string("v")), 0);
		}
		expect_valid_obj("generic", d);
		assert_int_equal(json_object_set_new(d, "one_more", json_string("v")), 0);
		expect_errors_obj("generic", d, "{\"data\": \"must have at most 64 fields\"}");
	}

	/* Field names. */
	expect_errors("generic", "{\"\": \"v\"}", one_error(want, sizeof(want), "data", bad_name));
	expect_errors("generic", "{\"a b\": \"v\"}", one_error(want, sizeof(want), "data", bad_name));
	expect_errors("generic", "{\"a/b\": \"v\"}", one_error(want, sizeof(want), "data", bad_name));
	expect_errors("generic", "{\"caf\\u00e9\": \"v\"}", one_error(want, sizeof(want), "data", bad_name));
	expect_errors("generic", "{\"a\\nb\": \"v\"}", one_error(want, sizeof(want), "data", bad_name));
	{
		_cleanup_json_ json_t *d = json_object();

		memset(k, 'n', 64);
		k[64] = '\0';
		assert_int_equal(json_object_set_new(d, k, json_string("v")), 0);
		expect_valid_obj("generic", d);
		k[64] = 'n';
		k[65] = '\0';
		assert_int_equal(json_object_set_new(d, k, json_string("v")), 0);
		expect_errors_obj("generic", d, one_error(want, sizeof(want), "data", bad_name));
	}
	{
		_cleanup_json_ json_t *d = json_object();

		assert_int_equal(json_object_setn_new(d, "a\0b", 3, json_string("v")), 0);
		expect_errors_obj("generic", d, one_error(want, sizeof(want), "data", bad_name));
	}

	/* Values. */
	expect_errors("generic", "{\"n\": 1}", "{\"n\": \"must be a string\"}");
	expect_errors("generic", "{\"n\": null}", "{\"n\": \"must be a string\"}");
	expect_errors("generic", "{\"n\": [\"x\"]}", "{\"n\": \"must be a string\"}");
	expect_errors("generic", "{\"n\": {\"x\": \"y\"}}", "{\"n\": \"must be a string\"}");
	expect_errors("generic", "{\"n\": \"\"}", "{\"n\": \"must not be empty\"}");
	expect_errors("generic", "{\"n\": \"a\\rb\"}",
		      "{\"n\": \"must not contain control characters other than newline and tab\"}");
	expect_errors("generic", "{\"n\": \"a\\u001bb\"}",
		      "{\"n\": \"must not contain control characters other than newline and tab\"}");
	expect_errors("generic", "{\"n\": \"a\\u007fb\"}",
		      "{\"n\": \"must not contain control characters other than newline and tab\"}");
	{
		_cleanup_json_ json_t *d = json_object();

		assert_int_equal(json_object_set_new(d, "n", json_stringn("a\0b", 3)), 0);
		expect_errors_obj("generic", d,
				  "{\"n\": \"must not contain control characters other than newline and tab\"}");
	}
	{
		_cleanup_json_ json_t *d = json_object();

		assert_int_equal(json_object_set_new(d, "big", filled(65536, 'x')), 0);
		expect_valid_obj("generic", d);
		assert_int_equal(json_object_set_new(d, "big", filled(65537, 'x')), 0);
		expect_errors_obj("generic", d, "{\"big\": \"must be at most 65536 bytes long\"}");
	}

	/* Every bad field at once. */
	expect_errors("generic", "{\"a\": 1, \"b\": \"\", \"c\": \"ok\", \"bad name\": \"v\"}",
		      "{\"a\": \"must be a string\", \"b\": \"must not be empty\","
		      " \"data\": \"field names must be 1 to 64 characters of [A-Za-z0-9_.-]\"}");
}

static void test_validate_edge_cases(void **state)
{
	json_t *sentinel = (json_t *)0x1, *errors = sentinel;
	_cleanup_json_ json_t *d = parse("{\"url\": \"http://x.example.com\", \"api_key\": \"k\"}");
	(void)state;

	/* No type: -EINVAL, nothing written. */
	assert_int_equal(cred_type_validate(NULL, d, &errors), -EINVAL);
	assert_ptr_equal(errors, sentinel);
	/* No errors pointer: verdict only, nothing leaks. */
	assert_int_equal(cred_type_validate(find("tactical-rmm"), d, NULL), -EINVAL);
	assert_int_equal(cred_type_validate(find("generic"), NULL, NULL), -EINVAL);
	/* data is only read. */
	assert_int_equal(json_object_size(d), 2);
}

static void test_sensitive(void **state)
{
	const struct cred_type *g = find("generic");
	(void)state;

	FOR_EACH_TYPED_FIELD(s, f)
		assert_int_equal(cred_field_is_sensitive(find(s->name), f->name), f->sensitive);

	assert_false(cred_field_is_sensitive(find("tactical-rmm"), "url"));
	assert_true(cred_field_is_sensitive(find("tactical-rmm"), "api_key"));
	assert_true(cred_field_is_sensitive(find("autotask"), "integration_code"));
	assert_false(cred_field_is_sensitive(find("autotask"), "username"));
	/* When in doubt, mask. */
	assert_true(cred_field_is_sensitive(find("tactical-rmm"), "unknown"));
	assert_true(cred_field_is_sensitive(find("tactical-rmm"), "URL"));
	assert_true(cred_field_is_sensitive(find("tactical-rmm"), NULL));
	assert_true(cred_field_is_sensitive(NULL, "url"));
	assert_true(cred_field_is_sensitive(g, "url"));
	assert_true(cred_field_is_sensitive(g, "username"));
	assert_true(cred_field_is_sensitive(g, "anything"));
}

static void test_types_to_json(void **state)
{
	_cleanup_json_ json_t *j = cred_types_to_json();
	json_t *types;
	char *dump;
	(void)state;

	assert_non_null(j);
	assert_int_equal(json_object_size(j), 1);
	types = json_object_get(j, "types");
	assert_true(json_is_array(types));
	assert_int_equal(json_array_size(types), ELEMENTSOF(spec));

	for (size_t i = 0; i < ELEMENTSOF(spec); i++) {
		json_t *t = json_array_get(types, i), *fields;
		size_t n = 0;

		assert_true(json_is_object(t));
		assert_int_equal(json_object_size(t), 4);
		assert_true(json_is_array(json_object_get(t, "forms")));
		assert_string_equal(json_string_value(json_object_get(t, "name")), spec[i].name);
		assert_true(json_is_string(json_object_get(t, "description")));
		fields = json_object_get(t, "fields");
		assert_true(json_is_array(fields));

		for (const struct spec_field *f = spec[i].fields; f->name; f++, n++) {
			json_t *o = json_array_get(fields, n);

			assert_true(json_is_object(o));
			assert_int_equal(json_object_size(o), f->form ? 9 : 8);
			assert_string_equal(json_string_value(json_object_get(o, "name")), f->name);
			assert_string_equal(json_string_value(json_object_get(o, "kind")), f->kind);
			assert_int_equal(json_is_true(json_object_get(o, "required")), !f->optional);
			assert_string_equal(json_string_value(json_object_get(o, "format")),
					    f->format ?: (streq(f->kind, "url") ? "https-url" : "text"));
			assert_true(json_is_string(json_object_get(o, "accepts")));
			if (f->form)
				assert_string_equal(json_string_value(json_object_get(o, "form")), f->form);
			assert_true(json_is_boolean(json_object_get(o, "sensitive")));
			assert_int_equal(json_is_true(json_object_get(o, "sensitive")), f->sensitive);
			assert_true(json_is_integer(json_object_get(o, "max_length")));
			assert_int_equal(json_integer_value(json_object_get(o, "max_length")), f->max_len);
			assert_true(json_is_string(json_object_get(o, "description")));
		}
		assert_int_equal(json_array_size(fields), n);   /* generic: [] */
	}

	/* PRTG's forms name their fields. */
	{
		json_t *forms = NULL;
		_cleanup_json_ json_t *want = parse(
			"[{\"name\": \"api-token\", \"description\": \"an API key, sent as apitoken\","
			"  \"fields\": [\"api_token\"]},"
			" {\"name\": \"passhash\", \"description\": \"a user name and its passhash\","
			"  \"fields\": [\"username\", \"passhash\"]}]");

		for (size_t i = 0; i < json_array_size(types); i++)
			if (streq(json_string_value(json_object_get(json_array_get(types, i), "name")), "prtg"))
				forms = json_object_get(json_array_get(types, i), "forms");
		assert_true(json_equal(forms, want));
	}

	dump = json_dumps(j, JSON_COMPACT);
	assert_non_null(dump);
	assert_non_null(strstr(dump, "{\"name\":\"url\",\"kind\":\"url\",\"required\":true,"
				     "\"sensitive\":false,\"max_length\":2048,"));
	json_secure_free(dump);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid_examples),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_table_matches_spec),
		cmocka_unit_test(test_required_missing),
		cmocka_unit_test(test_non_string),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_too_long),
		cmocka_unit_test(test_control_characters),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_url_fields_share_rules),
		cmocka_unit_test(test_connectwise_site),
		cmocka_unit_test(test_slack),
		cmocka_unit_test(test_teams_guid),
		cmocka_unit_test(test_format_cases),
		cmocka_unit_test(test_every_format_has_a_case),
		cmocka_unit_test(test_jwt),
		cmocka_unit_test(test_sha256_fingerprint),
		cmocka_unit_test(test_webhooks),
		cmocka_unit_test(test_prtg_forms),
		cmocka_unit_test(test_unknown_fields),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_all_bad_fields_reported),
		cmocka_unit_test(test_reasons_do_not_echo),
		cmocka_unit_test(test_generic),
		cmocka_unit_test(test_validate_edge_cases),
		cmocka_unit_test(test_sensitive),
		cmocka_unit_test(test_types_to_json),
	};

	json_secure_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
