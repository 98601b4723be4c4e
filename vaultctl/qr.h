/* vaultctl/qr.h: the TOTP enrolment of an init, user add or reset-mfa reply:
 * QR code (on a terminal or with qr), otpauth URI, base32 secret, recovery
 * codes, on standard output. */
#pragma once
#include <stdbool.h>
#include <jansson.h>

void print_enrolment(const json_t *reply, bool qr);
