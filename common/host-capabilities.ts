/**
 * The Linux capabilities that let an installed host agent give each tenant its own system user without running
 * as root (bit numbers of linux/capability.h). Its unit grants exactly these to the `palisade` user
 * (installer/systemd-unit.ts) and the host checks for them at start (agent/host/tenant-isolation.ts).
 * useradd and userdel write /etc/passwd, /etc/shadow and /etc/group (DAC_OVERRIDE, FOWNER, CHOWN); a tenant
 * process is forked as its user (SETUID, SETGID); the host stops it and ends what it left running (KILL); the
 * tenant's directory is handed to it (CHOWN). Measured: useradd and userdel work as an ordinary user holding
 * these six and nothing else (Debian 12, shadow 4.13).
 */
export const HOST_CAPABILITIES: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_DAC_OVERRIDE: 1,
  CAP_FOWNER: 3,
  CAP_KILL: 5,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
};
