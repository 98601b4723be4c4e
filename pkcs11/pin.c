/* pkcs11/pin.c: see pin.h. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <openssl/crypto.h>
#include <sodium.h>
#include "common/err.h"
#include "common/log.h"
#include "common/secret.h"
#include "common/util.h"
#include "pkcs11/pin.h"

static inline void closep(int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
}

/* PIN from a file: a regular file nobody but the owner may read or write,
 * at most PIN_MAX bytes plus one trailing newline. NUL-terminated inside the
 * secret (len excludes the NUL). */
int p11_pin_from_file(const char *path, struct secret **ret)
{
	_cleanup_secret_ struct secret *pin = NULL;
	_cleanup_(closep) int fd = -1;
	struct stat st;
	uint8_t extra;
	ssize_t n;
	int r;

	/* O_NONBLOCK: a FIFO planted at the path must not block us in open();
	 * regular files ignore it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		set_detail("PIN file '%s': %s", path, vlt_strerror(r));
		return -VLT_E_HSM_PIN_SOURCE;
	}
	/* fstat() on the open fd: the file we check is the file we read. */
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		set_detail("PIN file '%s' is not a regular file", path);
		return -VLT_E_HSM_PIN_SOURCE;
	}
	if (st.st_mode & 0077) {
		set_detail("PIN file '%s' has mode %04o; group and others must have no access",
			  path, (unsigned)(st.st_mode & 07777));
		return -VLT_E_HSM_PIN_SOURCE;
	}

	r = secret_new(PIN_MAX + 2, &pin);      /* PIN, '\n', NUL */
	if (r < 0)
		return r;
	while (pin->len < pin->cap - 1) {
		n = read(fd, pin->p + pin->len, pin->cap - 1 - pin->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -VLT_E_HSM_PIN_SOURCE;
		if (n == 0)
			break;
		pin->len += (size_t)n;
	}
	if (pin->len == pin->cap - 1) {
		/* Full: only fine if the file ends here. */
		do
			n = read(fd, &extra, 1);
		while (n < 0 && errno == EINTR);
		if (n != 0) {
			OPENSSL_cleanse(&extra, sizeof(extra));
			set_detail("PIN file '%s' is too long", path);
			return -VLT_E_HSM_PIN_SOURCE;
		}
	}
	if (pin->len > 0 && pin->p[pin->len - 1] == '\n')
		pin->len--;
	if (pin->len == 0 || pin->len > PIN_MAX || memchr(pin->p, '\0', pin->len)) {
		set_detail("PIN file '%s' is empty, too long or contains NUL", path);
		return -VLT_E_HSM_PIN_SOURCE;
	}
	pin->p[pin->len] = '\0';
	*ret = TAKE_PTR(pin);
	return 0;
}

/* PINs taken from the environment (finding 10). The variable is read once,
 * copied here, its bytes wiped in place and the variable unset, so the PIN is
 * neither inherited by children nor left in /proc/PID/environ; the daemon
 * opens the provider again at every unlock and rotation, and those opens get
 * this copy. The environment was the PIN's home for the life of the process:
 * this is its guarded replacement (sodium memory, sealed PROT_NONE between
 * opens), not a login cache. A provider still keeps no PIN of its own: each
 * open gets a copy that is wiped right after C_Login. */
struct env_pin {
	struct env_pin *next;
	struct secret *pin;             /* sealed while idle; NUL-terminated */
	char name[];
};
static pthread_mutex_t env_pins_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct env_pin *env_pins;        /* under env_pins_mtx; lives until exit */

/* Caller holds env_pins_mtx. */
static struct env_pin *env_pin_find(const char *name)
{
	for (struct env_pin *e = env_pins; e; e = e->next)
		if (streq(e->name, name))
			return e;
	return NULL;
}

/* Takes the value v of variable name: wipes it in environ and unsets it,
 * whether or not it is a usable PIN, then keeps a sealed copy of a usable
 * one, replacing what an earlier value left. Caller holds env_pins_mtx. */
static int env_pin_take(const char *name, char *v)
{
	_cleanup_secret_ struct secret *pin = NULL;
	struct env_pin *e;
	size_t n = strlen(v);
	int r = 0;

	if (n > PIN_MAX) {
		set_detail("PIN environment variable '%s' is too long", name);
		r = -VLT_E_HSM_PIN_SOURCE;
	} else if ((r = secret_new_guarded(n + 1, &pin)) >= 0) {
		memcpy(pin->p, v, n);
		pin->p[n] = '\0';
		pin->len = n;
	}
	/* Wipe before unsetenv(): afterwards nothing points at the bytes. The
	 * string is writable (the process's initial stack, or setenv()'s copy). */
	sodium_memzero(v, n);
	if (unsetenv(name) < 0 && r >= 0)
		r = -errno;
	if (r < 0)
		return r;
	if ((r = secret_seal(pin)) < 0)
		return r;

	e = env_pin_find(name);
	if (!e) {
		e = calloc(1, sizeof(*e) + strlen(name) + 1);
		if (!e)
			return -ENOMEM;
		strcpy(e->name, name);
		e->next = env_pins;
		env_pins = e;
	}
	if (e->pin) {
		/* An earlier value: wiped (which needs it writable). */
		(void)secret_unseal(e->pin);
		secret_free(e->pin);
	}
	e->pin = TAKE_PTR(pin);
	return 0;
}

/* The PIN named by environment variable 'name', as a copy the caller owns.
 * Set in the environment: that value (taken, see env_pin_take()); set but
 * empty: an error, whatever was taken before; unset: what was taken. */
int p11_pin_from_env(const char *name, struct secret **ret)
{
	struct secret *pin = NULL;
	struct env_pin *e;
	char *v;
	int r;

	pthread_mutex_lock(&env_pins_mtx);
	v = getenv(name);
	if (v && !*v) {
		set_detail("PIN environment variable '%s' is empty", name);
		r = -VLT_E_HSM_PIN_SOURCE;
		goto out;
	}
	if (v && (r = env_pin_take(name, v)) < 0)
		goto out;
	e = env_pin_find(name);
	if (!e) {
		set_detail("PIN environment variable '%s' is unset", name);
		r = -VLT_E_HSM_PIN_SOURCE;
		goto out;
	}
	if ((r = secret_unseal(e->pin)) < 0)
		goto out;
	r = secret_dup(e->pin, &pin);
	if (secret_seal(e->pin) < 0 && r >= 0)
		r = -EIO;
	if (r < 0) {
		secret_free(pin);
		goto out;
	}
	*ret = pin;
out:
	pthread_mutex_unlock(&env_pins_mtx);
	return r;
}
