/* vaultd/http/h_backup.c: POST /v1/sys/backup (docs/api.md, "Backup").
 * The copy is made by the store (a consistent snapshot; writers go on); this
 * handler checks the target and describes the copy in a manifest. */
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "vaultd/http/api_internal.h"

static int count_one(const struct store_secret *s, void *userdata)
{
	(void)s;
	(*(int64_t *)userdata)++;
	return 0;
}

int h_backup(struct api *a, struct call *c, json_t **ret_body)
{
	static const char *const fields[] = { "path", NULL };
	static const char *const q[] = { NULL };
	_cleanup_json_ json_t *body = NULL;
	struct store_backup_info info = {0};
	struct store_rootkey rk = {0};
	struct store_audit last = {0};
	struct store_tx *tx = NULL;
	int64_t secrets = 0, now = time(NULL);
	const char *path;
	char hex[65];
	json_t *p;
	int r, status;

	if ((r = check_query(c->req, q, ret_body)) || (r = parse_body(c->req, fields, &body, ret_body)))
		return r;
	p = json_object_get(body, "path");
	if (!json_is_string(p))
		return reply_invalid(ret_body, json_pack("{s:s}", "path", "required: an absolute file path"),
				     "invalid backup");
	path = json_string_value(p);
	if (path[0] != '/' || strlen(path) != json_string_length(p) || strlen(path) >= PATH_MAX)
		return reply_invalid(ret_body, json_pack("{s:s}", "path", "must be an absolute file path"),
				     "invalid backup");
	snprintf(c->detail, sizeof(c->detail), "to %.140s", path);

	/* What the copy will need to be restored: read just before it. */
	r = store_read_begin(a->store, &tx);
	if (r >= 0)
		r = store_rootkey_get_current(tx, &rk);
	if (r >= 0)
		r = store_secret_list(tx, "", 0, count_one, &secrets);
	if (r >= 0 && (r = store_audit_last(tx, &last)) == -ENOENT)
		r = 0;
	store_tx_end(tx);
	if (r >= 0)
		r = store_backup(a->store, path, &info);
	if (r == -EEXIST) {
		store_rootkey_clear(&rk);
		return reply_error(ret_body, 409, "exists", "'%s' exists; vaultd never overwrites a file with a backup",
				   path);
	}
	if (r == -ENOENT || r == -EACCES || r == -ENOTDIR || r == -EPERM || r == -ELOOP || r == -EROFS) {
		store_rootkey_clear(&rk);
		return reply_error(ret_body, 400, "bad_path", "cannot create '%s': %s (the daemon writes it, as its own user)",
				   path, strerror(-r));
	}
	if (r < 0) {
		store_rootkey_clear(&rk);
		store_audit_clear(&last);
		return reply_store_busy_or_internal(ret_body, c->req, r, "backup");
	}
	/* The file exists only with its record: recorded now, or removed. */
	if ((status = audit_effect(a, c, ret_body))) {
		if (unlink(path) < 0)
			log_error_errno(-errno, "cannot remove the unrecorded backup '%s'", path);
		store_rootkey_clear(&rk);
		store_audit_clear(&last);
		return status;
	}
	sodium_bin2hex(hex, sizeof(hex), info.sha256, sizeof(info.sha256));
	log_info("backup written to '%s' (%lld bytes)", path, (long long)info.bytes);
	r = reply(ret_body, 200,
		  json_pack("{s:s, s:I, s:s, s:i, s:o, s:I, s:{s:s, s:I}, s:I, s:I}", "path", path, "bytes",
			    (json_int_t)info.bytes, "sha256", hex, "schema_version", info.schema_version, "created_at",
			    json_time(now), "root_key_version", (json_int_t)rk.version, "hsm_key", "label",
			    rk.hsm_label, "version", (json_int_t)rk.hsm_version, "secrets", (json_int_t)secrets,
			    "audit_records", (json_int_t)last.id));
	store_rootkey_clear(&rk);
	store_audit_clear(&last);
	return r;
}
