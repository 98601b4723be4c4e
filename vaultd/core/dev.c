/* vaultd/core/dev.c: see dev.h. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <spawn.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/encoding.h"
#include "common/log.h"
#include "vaultd/core/dev.h"

extern char **environ;

#define DEV_TOKEN "vaultd-dev"

static const char *const softhsm_modules[] = {
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
};

void dev_vault_clear(struct dev_vault *d)
{
	free(d->dir);
	free(d->config_text);
	free(d->config_name);
	secret_free(d->passphrase);
	secret_free(d->totp_secret);
	*d = (struct dev_vault){0};
}

/* Writes data to dir/name with mode 0600, failing if it exists. */
static int write_new_file(const char *dir, const char *name, const void *data, size_t n)
{
	char path[PATH_MAX];
	int fd, r = 0;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, data, n) != (ssize_t)n || fsync(fd) < 0)
		r = -EIO;
	close(fd);
	return r;
}

/* Reads dir/name (a small 0600 file) into guarded memory, minus a trailing newline. */
static int read_secret_file(const char *dir, const char *name, struct secret **ret)
{
	_cleanup_secret_ struct secret *s = NULL;
	char path[PATH_MAX];
	ssize_t n;
	int fd, r;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	r = secret_new(4096, &s);
	if (r < 0) {
		close(fd);
		return r;
	}
	n = read(fd, s->p, s->cap);
	close(fd);
	if (n <= 0)
		return -EIO;
	s->len = (size_t)n;
	if (s->p[s->len - 1] == '\n')
		s->len--;
	*ret = TAKE_PTR(s);
	return 0;
}

/* A random printable string (base32 of 20 bytes): PINs and passphrases. */
static int random_text(struct secret **ret)
{
	uint8_t raw[20];
	char text[40];
	int r;

	randombytes_buf(raw, sizeof(raw));
	r = base32_encode(raw, sizeof(raw), 0, text, sizeof(text));
	sodium_memzero(raw, sizeof(raw));
	if (r < 0)
		return r;
	r = secret_from_bytes(text, strlen(text), ret);
	sodium_memzero(text, sizeof(text));
	return r;
}

static int init_token(const char *pin, const char *so_pin)
{
	char *argv[] = { (char *)"softhsm2-util", (char *)"--init-token", (char *)"--free", (char *)"--label",
			 (char *)DEV_TOKEN, (char *)"--pin", (char *)pin, (char *)"--so-pin", (char *)so_pin, NULL };
	posix_spawn_file_actions_t fa;
	int status, r;
	pid_t pid;

	/* The PIN is briefly visible in this child's argv: acceptable for a
	 * throwaway dev token, and why --dev is never for production. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = posix_spawnp(&pid, "softhsm2-util", &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (r != 0)
		return -r;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

int dev_prepare(const char *dir_arg, struct dev_vault *ret)
{
	struct dev_vault d = {0};
	char path[PATH_MAX], *buf = NULL;
	const char *module = NULL;
	struct stat st;
	size_t size = 0;
	FILE *f;
	int r;

	if (mkdir(dir_arg, 0700) < 0 && errno != EEXIST)
		return log_error_errno(-errno, "cannot create '%s'", dir_arg);
	d.dir = realpath(dir_arg, NULL);
	if (!d.dir)
		return log_error_errno(-errno, "cannot resolve '%s'", dir_arg);
	if (stat(d.dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
		log_error("'%s' must be a directory owned by uid %u with mode 0700", d.dir, (unsigned)getuid());
		r = -EPERM;
		goto fail;
	}
	for (size_t i = 0; i < ELEMENTSOF(softhsm_modules) && !module; i++)
		if (access(softhsm_modules[i], R_OK) == 0)
			module = softhsm_modules[i];
	if (!module) {
		log_error("SoftHSM2 not found; install the softhsm2 package (scripts/install-deps)");
		r = -ENOENT;
		goto fail;
	}

	snprintf(path, sizeof(path), "%s/softhsm2.conf", d.dir);
	if (setenv("SOFTHSM2_CONF", path, 1) < 0) {
		r = -errno;
		goto fail;
	}
	if (access(path, F_OK) < 0) {
		_cleanup_secret_ struct secret *pin = NULL, *so_pin = NULL, *pass = NULL;
		char tokens[PATH_MAX], conf[PATH_MAX + 128], pin_z[64], so_z[64];

		snprintf(tokens, sizeof(tokens), "%s/tokens", d.dir);
		if (mkdir(tokens, 0700) < 0 && errno != EEXIST) {
			r = -errno;
			goto fail;
		}
		snprintf(conf, sizeof(conf),
			 "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n", tokens);
		if ((r = random_text(&pin)) < 0 || (r = random_text(&so_pin)) < 0 || (r = random_text(&pass)) < 0)
			goto fail;
		if ((r = write_new_file(d.dir, "softhsm2.conf", conf, strlen(conf))) < 0 ||
		    (r = write_new_file(d.dir, "hsm.pin", pin->p, pin->len)) < 0 ||
		    (r = write_new_file(d.dir, "admin.passphrase", pass->p, pass->len)) < 0) {
			log_error_errno(r, "cannot write the dev vault's files in '%s'", d.dir);
			goto fail;
		}
		snprintf(pin_z, sizeof(pin_z), "%.*s", (int)pin->len, (const char *)pin->p);
		snprintf(so_z, sizeof(so_z), "%.*s", (int)so_pin->len, (const char *)so_pin->p);
		r = init_token(pin_z, so_z);
		sodium_memzero(pin_z, sizeof(pin_z));
		sodium_memzero(so_z, sizeof(so_z));
		if (r < 0) {
			log_error_errno(r, "softhsm2-util could not create the dev token");
			goto fail;
		}
		d.created = true;
	}
	if (read_secret_file(d.dir, "admin.totp", &d.totp_secret) == 0 &&
	    secret_append(d.totp_secret, "", 1) < 0) {
		secret_free(d.totp_secret);     /* no room for the NUL: not ours */
		d.totp_secret = NULL;
	}
	r = read_secret_file(d.dir, "admin.passphrase", &d.passphrase);
	if (r < 0) {
		log_error_errno(r, "cannot read '%s/admin.passphrase'", d.dir);
		goto fail;
	}

	f = open_memstream(&buf, &size);
	if (!f) {
		r = -ENOMEM;
		goto fail;
	}
	fprintf(f,
		"; generated by vaultd --dev: NOT FOR PRODUCTION\n"
		"[server]\nsocket = %s/vaultd.sock\nsocket_mode = 0600\n"
		"[storage]\npath = %s/vault.db\n"
		"[hsm]\nmodule = %s\ntoken_label = %s\npin_file = %s/hsm.pin\nkey_label = vaultd-root\n",
		d.dir, d.dir, module, DEV_TOKEN, d.dir);
	if (fclose(f) != 0) {
		free(buf);
		r = -ENOMEM;
		goto fail;
	}
	d.config_text = buf;
	if (asprintf(&d.config_name, "%s/(generated dev config)", d.dir) < 0) {
		d.config_name = NULL;
		r = -ENOMEM;
		goto fail;
	}
	*ret = d;
	return 0;
fail:
	dev_vault_clear(&d);
	return r;
}

int dev_save_enrolment(struct dev_vault *d, const char *totp_b32, const json_t *recovery_codes)
{
	_cleanup_free_ char *codes = NULL;
	size_t size = 0, i;
	json_t *v;
	FILE *f;
	int r;

	if (!totp_b32 || !json_is_array(recovery_codes))
		return -EINVAL;
	f = open_memstream(&codes, &size);
	if (!f)
		return -ENOMEM;
	json_array_foreach(recovery_codes, i, v)
		fprintf(f, "%s\n", json_string_value(v));
	if (fclose(f) != 0)
		return -ENOMEM;
	if ((r = write_new_file(d->dir, "admin.totp", totp_b32, strlen(totp_b32))) < 0 ||
	    (r = write_new_file(d->dir, "admin.recovery", codes, size)) < 0)
		return r;
	sodium_memzero(codes, size);
	secret_free(d->totp_secret);
	d->totp_secret = NULL;
	return secret_from_bytes(totp_b32, strlen(totp_b32) + 1, &d->totp_secret);
}
