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
};

struct spec_type {
	const char *name;
	const char *valid;              /* a valid data object */
	struct spec_field fields[6];    /* ends at name == NULL */
};

static const struct spec_type spec[] = {
	{ "tactical-rmm",
	  "{\"url\": \"https://api.example.com\", \"api_key\": \"ABCDEF0123456789\"}",
	  { { "url", "url", false, 2048 }, { "api_key", "string", true, 4096 } } },
	{ "connectwise-manage",
	  "{\"site\": \"api-na.myconnectwise.net\", \"company_id\": \"acme\", \"public_key\": \"Pub1\","
	  " \"private_key\": \"Priv1\", \"client_id\": \"c0ffee00-1111-2222-3333-444455556666\"}",
	  { { "site", "string", false, 253 }, { "company_id", "string", false, 256 },
	    { "public_key", "string", false, 4096 }, { "private_key", "string", true, 4096 },
	    { "client_id", "string", false, 256 } } },
	{ "connectwise-automate",
	  "{\"server_url\": \"https://automate.example.com:8443/cwa/api\", \"username\": \"integrator\","
	  " \"password\": \"correct horse battery staple\", \"client_id\": \"abc\"}",
	  { { "server_url", "url", false, 2048 }, { "username", "string", false, 256 },
	    { "password", "string", true, 4096 }, { "client_id", "string", false, 256 } } },
	{ "kaseya-vsa",
	  "{\"url\": \"https://vsa.example.com\", \"username\": \"admin\", \"api_token\": \"tok\"}",
	  { { "url", "url", false, 2048 }, { "username", "string", false, 256 },
	    { "api_token", "string", true, 4096 } } },
	{ "autotask",
	  "{\"username\": \"api@example.com\", \"secret\": \"s3cr3t\", \"integration_code\": \"CODE42\"}",
	  { { "username", "string", false, 256 }, { "secret", "string", true, 4096 },
	    { "integration_code", "string", true, 4096 } } },
	{ "prtg",
	  "{\"url\": \"https://[2001:db8::1]:8443/\", \"username\": \"prtgadmin\", \"passhash\": \"1234567890\"}",
	  { { "url", "url", false, 2048 }, { "username", "string", false, 256 },
	    { "passhash", "string", true, 4096 } } },
	{ "slack",
	  "{\"bot_token\": \"xoxb-1234-5678-AbCdEf\", \"signing_secret\": \"8f742231b10e8888abcd99aaabbb85a5\"}",
	  { { "bot_token", "string", true, 4096 }, { "signing_secret", "string", true, 32 } } },
	{ "teams",
	  "{\"tenant_id\": \"72f988bf-86f1-41af-91ab-2d7cd011db47\","
	  " \"client_id\": \"0A1B2C3D-4E5F-6A7B-8C9D-0E1F2A3B4C5D\", \"client_secret\": \"x~y.z\"}",
	  { { "tenant_id", "string", false, 36 }, { "client_id", "string", false, 36 },
	    { "client_secret", "string", true, 4096 } } },
	{ "generic",
	  "{\"key\": \"-----BEGIN KEY-----\\nAAAA\\n-----END KEY-----\\n\", \"a.b-c_D9\": \"x\\ty\"}",
	  { { .name = NULL } } },
};

static json_t *parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, 0, &e);

	if (!j)
		fail_msg("bad test JSON at %d: %s", e.position, e.text);
	return j;
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

	for (size_t i = 0; i < ELEMENTSOF(spec); i++)
		expect_valid(spec[i].name, spec[i].valid);
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
			assert_true(t->fields[n].required);
			assert_int_equal(t->fields[n].sensitive, f->sensitive);
			assert_int_equal(t->fields[n].max_len, f->max_len);
			assert_non_null(t->fields[n].description);
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
	_cleanup_json_ json_t *d = example_with(&spec[1], "site", json_string(site));

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
	_cleanup_json_ json_t *d = example_with(&spec[7], field, json_string(guid));
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
		assert_int_equal(json_object_size(t), 3);
		assert_string_equal(json_string_value(json_object_get(t, "name")), spec[i].name);
		assert_true(json_is_string(json_object_get(t, "description")));
		fields = json_object_get(t, "fields");
		assert_true(json_is_array(fields));

		for (const struct spec_field *f = spec[i].fields; f->name; f++, n++) {
			json_t *o = json_array_get(fields, n);

			assert_true(json_is_object(o));
			assert_int_equal(json_object_size(o), 6);
			assert_string_equal(json_string_value(json_object_get(o, "name")), f->name);
			assert_string_equal(json_string_value(json_object_get(o, "kind")), f->kind);
			assert_true(json_is_true(json_object_get(o, "required")));
			assert_true(json_is_boolean(json_object_get(o, "sensitive")));
			assert_int_equal(json_is_true(json_object_get(o, "sensitive")), f->sensitive);
			assert_true(json_is_integer(json_object_get(o, "max_length")));
			assert_int_equal(json_integer_value(json_object_get(o, "max_length")), f->max_len);
			assert_true(json_is_string(json_object_get(o, "description")));
		}
		assert_int_equal(json_array_size(fields), n);   /* generic: [] */
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
