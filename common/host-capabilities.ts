/**
 * The Linux capabilities that let an installed host agent run each tenant as its own system user without
 * running as root (bit numbers of linux/capability.h). Its unit grants exactly these to the `palisade` user
 * (installer/systemd-unit.ts) and the host checks for them at start (agent/host/tenant-isolation.ts).
 * A tenant process is forked as its user (SETUID, SETGID) and its new directory handed to it (CHOWN). The
 * users themselves come from a pool install.sh made as root (agent/host/tenant-user-pool.ts), and whatever
 * the host does inside a tenant's directory or to its processes runs as the tenant's user
 * (agent/host/as-tenant.ts): so no DAC_OVERRIDE, FOWNER or KILL, which with ProtectProc=invisible take the
 * unit from 2.4 to 1.9 in `systemd-analyze security --offline` (systemd 252).
 */
export const HOST_CAPABILITIES: Readonly<Record<string, number>> = {
  CAP_CHOWN: 0,
  CAP_SETGID: 6,
  CAP_SETUID: 7,
};
