/* vaultctl/backup.c: backup (docs/api.md, "Backup").
 * vaultd writes the copy itself, as its own user, to a path it resolves on
 * its own: a relative FILE is made absolute against our working directory
 * first. The manifest names the HSM key version the copy needs.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include "common/json.h"
#include "vaultctl/backup.h"
#include "vaultctl/cli.h"
#include "vaultctl/client.h"
#include "vaultctl/msg.h"
#include "vaultctl/output.h"

/* FILE against the working directory (not resolved further: the file does
 * not exist yet, and what a symlink means is for vaultd to see). */
static char *absolute(const char *file)
{
	_cleanup_free_ char *cwd = NULL;
	char *out = NULL;

	if (file[0] == '/')
		return strdup(file);
	if (!(cwd = getcwd(NULL, 0)))
		return NULL;
	while (file[0] == '.' && file[1] == '/')
		file += 2;
	if (asprintf(&out, "%s%s%s", cwd, streq(cwd, "/") ? "" : "/", file) < 0)
		return NULL;
	return out;
}

/* The directory of path ("." when it has none). */
static char *dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');

	if (!slash)
		return strdup(".");
	if (slash == path)
		return strdup("/");
	return strndup(path, (size_t)(slash - path));
}

/* Writes text to path, mode 0600, atomically (temp file + rename). */
static int write_private(const char *path, const char *text)
{
	_cleanup_free_ char *dir = dir_of(path), *tmp = NULL;
	size_t len = strlen(text), off = 0;
	int fd, e;

	if (!dir || asprintf(&tmp, "%s/.vaultctl-manifest.XXXXXX", dir) < 0)
		return error("out of memory");
	fd = mkstemp(tmp);      /* 0600 */
	if (fd < 0)
		return error("cannot create a file in %s: %m", dir);
	while (off < len) {
		ssize_t n = write(fd, text + off, len - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	if (off < len || fchmod(fd, 0600) < 0 || fsync(fd) < 0) {
		e = errno;
		close(fd);
		unlink(tmp);
		return error("cannot write the manifest %s: %s", path, strerror(e ? e : EIO));
	}
	if (close(fd) < 0 || rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return error("cannot write the manifest %s: %s", path, strerror(e));
	}
	return EXIT_OK;
}

static const char backup_help[] =
	"Usage: vaultctl backup FILE [--manifest OUT] [--json]\n"
	"\n"
	"Has vaultd write a consistent copy of its database to FILE while it keeps\n"
	"serving (readers and writers are not blocked). vaultd creates FILE itself,\n"
	"as its own user, mode 0600: its directory must exist and be writable by\n"
	"vaultd, and FILE must not exist (exit 7). A relative FILE is taken from\n"
	"the current directory. Needs the admin role.\n"
	"\n"
	"Prints the manifest: path, size, SHA-256, schema version, key versions,\n"
	"counts. The copy holds only wrapped keys and ciphertext: it is useless\n"
	"without the HSM token holding the HSM key version the manifest names (and\n"
	"its PIN). Keep that key until no backup needs it. --manifest OUT also\n"
	"writes the manifest as JSON to OUT (mode 0600); --json prints it.\n"
	"Restoring is offline: see docs/operations.md.\n"
	"\n"
	"Example:\n"
	"  vaultctl backup /var/backups/vaultd/vault-$(date +%F).db --manifest /var/backups/vaultd/vault-$(date +%F).json\n";

int cmd_backup(struct ctx *ctx, int argc, char **argv)
{
	enum { OPT_MANIFEST = OPT_COMMON_LAST + 1 };
	static const struct option opts[] = {
		COMMON_LONGOPTS,
		{ "manifest", required_argument, NULL, OPT_MANIFEST },
		{},
	};
	_cleanup_json_ json_t *body = NULL, *reply = NULL;
	_cleanup_free_ char *path = NULL, *mdir = NULL, *mpath = NULL;
	const char *manifest = NULL, *key;
	const json_t *hsm;
	json_t *v;
	char *text;
	int c, r;

	while ((c = GETOPT(argc, argv, COMMON_SHORTOPTS, opts)) != -1) {
		if (c == OPT_MANIFEST) {
			if (!*optarg)
				return usage_error("backup", "--manifest needs a file name");
			manifest = optarg;
		} else if ((r = common_option(ctx, c, backup_help)) != OPT_CONTINUE)
			return r;
	}
	if (optind + 1 != argc)
		return usage_error("backup", "backup needs exactly one FILE");
	if (!*argv[optind])
		return usage_error("backup", "an empty FILE");
	if (!(path = absolute(argv[optind])))
		return error("cannot make %s absolute: %m", argv[optind]);
	if (manifest) {
		struct stat st;

		/* Fail before the copy, not after it. */
		if (!(mpath = absolute(manifest)) || !(mdir = dir_of(mpath)))
			return error("cannot make %s absolute: %m", manifest);
		if (streq(mpath, path))
			return usage_error("backup", "--manifest must name another file than the backup");
		if (stat(mdir, &st) < 0 || !S_ISDIR(st.st_mode))
			return error("cannot write the manifest into %s: %s", mdir,
				     errno ? strerror(errno) : "not a directory");
		if (access(mdir, W_OK) < 0)
			return error("cannot write the manifest into %s: %m", mdir);
	}
	body = json_pack("{s:s}", "path", path);
	if (!body)
		return error("%s is not valid UTF-8", path);
	if ((r = api_call(ctx, "backup", "POST", "/v1/sys/backup", body, API_AUTH, &reply)) != EXIT_OK)
		return r;
	if (!json_is_object(reply) || !json_is_string(json_object_get(reply, "sha256")))
		return error("backup: unexpected reply from vaultd (no manifest)");
	if (manifest) {
		text = json_dumps(reply, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (!text)
			return error("out of memory");
		{
			_cleanup_free_ char *line = NULL;
			r = asprintf(&line, "%s\n", text) < 0 ? error("out of memory") : write_private(mpath, line);
		}
		json_secure_free(text);
		if (r != EXIT_OK) {
			/* The copy exists: show its manifest anyway. */
			if (ctx->json)
				print_json(reply);
			return r;
		}
	}
	if (ctx->json) {
		print_json(reply);
		return EXIT_OK;
	}
	hsm = json_object_get(reply, "hsm_key");
	kv(16, "path", "%s", json_string_value(json_object_get(reply, "path")) ?: path);
	{
		_cleanup_free_ char *bytes = json_text(json_object_get(reply, "bytes"));
		_cleanup_free_ char *schema = json_text(json_object_get(reply, "schema_version"));
		_cleanup_free_ char *root = json_text(json_object_get(reply, "root_key_version"));
		_cleanup_free_ char *secrets = json_text(json_object_get(reply, "secrets"));
		_cleanup_free_ char *audit = json_text(json_object_get(reply, "audit_records"));
		kv(16, "bytes", "%s", bytes ?: "-");
		kv(16, "sha256", "%s", json_string_value(json_object_get(reply, "sha256")));
		kv(16, "schema version", "%s", schema ?: "-");
		kv(16, "created", "%s", json_string_value(json_object_get(reply, "created_at")) ?: "-");
		kv(16, "root key", "version %s", root ?: "-");
		kv(16, "hsm key", "'%s' version %lld", json_string_value(json_object_get(hsm, "label")) ?: "?",
		   (long long)json_integer_value(json_object_get(hsm, "version")));
		kv(16, "secrets", "%s", secrets ?: "-");
		kv(16, "audit records", "%s", audit ?: "-");
	}
	if (mpath)
		kv(16, "manifest", "%s", mpath);
	/* Unknown manifest fields (a newer vaultd) are shown too. */
	json_object_foreach(reply, key, v) {
		static const char *const known[] = { "path", "bytes", "sha256", "schema_version", "created_at",
						     "root_key_version", "hsm_key", "secrets", "audit_records" };
		bool seen = false;
		for (size_t i = 0; i < ELEMENTSOF(known); i++)
			seen |= streq(key, known[i]);
		if (!seen) {
			_cleanup_free_ char *t = json_text(v);
			kv(16, key, "%s", t ?: "?");
		}
	}
	putchar('\n');
	out_line("Keep the HSM token with key %s version %lld: the backup is useless without it.",
		 json_string_value(json_object_get(hsm, "label")) ?: "?",
		 (long long)json_integer_value(json_object_get(hsm, "version")));
	return EXIT_OK;
}
