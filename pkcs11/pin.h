/* pkcs11/pin.h: where the token PIN comes from ([hsm] pin_file or pin_env),
 * for keyprov_p11.c's open. Internal to pkcs11/. Every failure says why in
 * the thread's detail (set_detail(), keyprov_error_detail()), never the PIN.
 */
#pragma once
#include "common/secret.h"
#include "common/util.h"

#define PIN_MAX 256

/* The PIN in a file: a regular file nobody but the owner may read or write,
 * at most PIN_MAX bytes and one trailing newline. 0 and a new secret
 * (NUL-terminated inside, len without it); -VLT_E_HSM_PIN_SOURCE. */
int p11_pin_from_file(const char *path, struct secret **ret);
/* The PIN in environment variable name: taken once (wiped in place and
 * unset), then kept sealed in guarded memory; each call gets a fresh copy.
 * 0 or -VLT_E_HSM_PIN_SOURCE / -ENOMEM / -EIO. */
int p11_pin_from_env(const char *name, struct secret **ret);

/* keyprov_p11.c: records what the current call failed on (a path, a label,
 * a library error; never a PIN) for keyprov_error_detail(). */
_printf_(1, 2) void set_detail(const char *fmt, ...);
