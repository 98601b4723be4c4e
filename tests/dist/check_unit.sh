#!/usr/bin/env bash
# tests/dist/check_unit.sh UNIT SBIN_VAULTD: the unit file as built keeps what a Debian
# deployment needs (issue 14, point 2) and its systemd exposure score stays at
# or under 2.0 (systemd-analyze security --offline=true). Prints the score.
set -euo pipefail
unit=$1 vaultd=$2
fail=0
need() {
	if ! grep -qE "$1" "$unit"; then
		echo "check_unit: $unit: no line matching '$1' ($2)" >&2
		fail=1
	fi
}
need '^Restart=on-failure$' "restart after a crash"
need '^SupplementaryGroups=softhsm$' "SoftHSM2's config and tokens are group softhsm"
need '^RuntimeDirectoryMode=0755$' "socket_group members must reach the socket"
need '^ReadWritePaths=.*/var/lib/vaultd( |$)' "the state directory"
need '^ReadWritePaths=.*-/var/lib/softhsm/tokens( |$)' "init and rotate hsm write the token"
need '^ReadWritePaths=.*-/var/backups/vaultd( |$)' "vaultctl backup writes there"
need "^ExecStart=$vaultd -c " "the binary where this build installs it"
need '^LoadCredentialEncrypted=hsm.pin:' "the PIN as an encrypted credential, which the config's pin_file names"

score=$(systemd-analyze security --offline=true --no-pager "$unit" 2>/dev/null |
	sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [[ -z $score ]]; then
	echo "check_unit: systemd-analyze gave no exposure score for $unit" >&2
	exit 1
fi
echo "exposure score of $unit: $score (at most 2.0)"
if ! awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	echo "check_unit: $unit: exposure $score is over 2.0" >&2
	fail=1
fi
exit $fail
