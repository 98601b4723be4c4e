/* vaultctl/qr.c: the TOTP enrolment, as a terminal QR code and as text.
 * The QR code is drawn with Unicode half blocks, two modules per character
 * row. Light modules are drawn as blocks and dark ones as spaces, like
 * qrencode -t UTF8, so it reads as a normal code on the usual light-on-dark
 * terminal; the quiet zone is drawn light too.
 */
#include <qrencode.h>
#include <stdio.h>
#include <unistd.h>
#include "vaultctl/output.h"
#include "vaultctl/qr.h"

#define QUIET 2

static bool dark(const QRcode *q, int x, int y)
{
	if (x < 0 || y < 0 || x >= q->width || y >= q->width)
		return false;
	return q->data[y * q->width + x] & 1;
}

static int qr_print(const char *text)
{
	QRcode *q = QRcode_encodeString(text, 0, QR_ECLEVEL_L, QR_MODE_8, 1);

	if (!q)
		return -1;
	for (int y = -QUIET; y < q->width + QUIET; y += 2) {
		for (int x = -QUIET; x < q->width + QUIET; x++) {
			bool top = !dark(q, x, y), bottom = y + 1 < q->width + QUIET && !dark(q, x, y + 1);
			fputs(top && bottom ? "\u2588" : top ? "\u2580" : bottom ? "\u2584" : " ", stdout);
		}
		putchar('\n');
	}
	QRcode_free(q);
	return 0;
}

void print_enrolment(const json_t *reply, bool qr)
{
	const char *uri = json_string_value(json_object_get(reply, "totp_uri"));
	const char *b32 = json_string_value(json_object_get(reply, "totp_secret"));
	const json_t *codes = json_object_get(reply, "recovery_codes");
	const json_t *c;
	size_t i;

	if (uri) {
		puts("Add this account to an authenticator app (TOTP): scan the QR code or enter the secret.");
		if (qr || isatty(STDOUT_FILENO)) {
			putchar('\n');
			if (qr_print(uri) < 0)
				puts("(the QR code could not be drawn: use the URI or the secret)");
			putchar('\n');
		}
		kv(12, "otpauth URI", "%s", uri);
	}
	if (b32)
		kv(12, "secret", "%s", b32);
	if (json_array_size(codes)) {
		puts("\nRecovery codes (shown once: store them offline now; each works once):");
		json_array_foreach(codes, i, c)
			out_line("  %s", json_string_value(c) ? json_string_value(c) : "?");
	}
	if (uri)
		puts("\nThe enrolment completes with the first valid code (unlock or login).");
}
