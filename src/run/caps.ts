// The capabilities a RUN gets: Docker's default set for containers, for every isolation that can
// set them (the OCI spec's sets, chroot's setpriv drop, plain-chroot's bounding set).

/** Docker's default capability set for containers (and so for RUN). */
export const DEFAULT_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID",
  "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];
