/* vaultd/secrets/types.h: credential types.
 * Each type is a static const table of fields saying which are required, which
 * are sensitive (masked by vaultctl unless --reveal) and how values are
 * checked. Everything here is static data; functions are pure and thread-safe
 * (jansson objects passed in are only read).
 *
 * A type with n_fields == 0 is free-form ("generic"): any 1 to CRED_FIELDS_MAX
 * string fields, every one sensitive.
 *
 * Validation reasons are short sentences that never contain the value.
 */
#pragma once
#include "common/json.h"         /* jansson, _cleanup_json_ */
#include <stdbool.h>
#include <stddef.h>
#include "common/util.h"

#define CRED_FIELDS_MAX 64              /* fields in one data object, any type */
#define CRED_FIELD_NAME_MAX 64          /* generic field names: [A-Za-z0-9_.-]{1,64} */
#define CRED_GENERIC_VALUE_MAX 65536    /* bytes in one generic value */

enum cred_field_kind {
	CRED_FIELD_STRING,              /* "string" in GET /v1/types */
	CRED_FIELD_URL,                 /* "url": https only, no userinfo */
};

/* Extra syntax a field must have, on top of its kind. GET /v1/types
 * publishes it as "format" (the names below) with "accepts", one line saying
 * in words what passes; see cred_field_format_name(). */
enum cred_field_format {
	CRED_FORMAT_NONE = 0,           /* "text", or "https-url" for a URL field */
	CRED_FORMAT_HOSTNAME,           /* "hostname": labels of [A-Za-z0-9-], no URL */
	CRED_FORMAT_GUID,               /* "guid": 8-4-4-4-12 hex digits */
	CRED_FORMAT_HEX32,              /* "hex32": exactly 32 hex digits */
	CRED_FORMAT_SLACK_BOT,          /* "slack-bot-token": "xoxb-" then printable ASCII */
	CRED_FORMAT_JWT,                /* "jwt": three base64url parts, signed */
	CRED_FORMAT_SHA256_FP,          /* "sha256-fingerprint": 64 hex, colons allowed */
	CRED_FORMAT_SLACK_WEBHOOK,      /* "slack-webhook-url": https://hooks.slack.com/services/... */
	_CRED_FORMAT_MAX,
};

struct cred_field {
	const char *name;
	enum cred_field_kind kind;
	bool required;
	bool sensitive;
	size_t max_len;                 /* bytes */
	const char *description;
	enum cred_field_format format;
	const char *form;               /* NULL: in every form; else a cred_form name */
};

/* A type with forms accepts exactly one of them: the fields of one form, plus
 * the fields that belong to none. 'required' on a form's field means required
 * when that form is used. */
struct cred_form {
	const char *name;
	const char *description;
};

struct cred_type {
	const char *name;
	const char *description;
	const struct cred_field *fields;        /* NULL for generic */
	size_t n_fields;
	const struct cred_form *forms;          /* NULL: no alternatives */
	size_t n_forms;
};

/* The type named 'name', or NULL if unknown (or name is NULL). Linear lookup. */
const struct cred_type *cred_type_find(const char *name);
/* Number of types, and the i-th in a fixed order; NULL if i is out of range. */
size_t cred_types_count(void);
const struct cred_type *cred_type_at(size_t i);

/* 0 if 'data' is valid for 't'. Otherwise -EINVAL and, if ret_errors is not
 * NULL, *ret_errors = a new JSON object {"<field>": "<reason>", ...} naming
 * every bad field; the caller owns it. Problems with the object as a whole
 * (not an object, field count, a field name that is not [A-Za-z0-9_.-]{1,64})
 * are reported under "data". Missing required fields read "required", fields
 * the type does not define read "unknown field". -EINVAL with no errors
 * object if t is NULL; -ENOMEM if the errors object cannot be built.
 * *ret_errors is written only when -EINVAL is returned with errors. */
_warn_unused_ int cred_type_validate(const struct cred_type *t, const json_t *data, json_t **ret_errors);

/* Whether a field's value is to be masked. True for generic types, unknown
 * fields, and a NULL type or field: when in doubt, mask. */
bool cred_field_is_sensitive(const struct cred_type *t, const char *field);

/* The published name of a field's format ("text", "https-url", "hostname",
 * ...) and the one line saying what it accepts. Never NULL. */
const char *cred_field_format_name(const struct cred_field *f);
const char *cred_field_accepts(const struct cred_field *f);

/* New object for GET /v1/types, built from the static tables:
 * {"types": [{"name", "description", "fields": [{"name", "kind": "string"|"url",
 *   "required", "sensitive", "max_length", "description", "format", "accepts"
 *   [, "form"]}], "forms": [{"name", "description", "fields": [names]}]}]}
 * "forms" is [] for a type without alternatives; with forms, exactly one is
 * used. Generic has "fields": []. NULL on allocation failure. Caller owns it. */
json_t *cred_types_to_json(void);
