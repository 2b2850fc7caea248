"""rkt's `--insecure-options`: which security checks the user chose to switch off, and the warnings.

Values (comma separated): none, image (no signature check), tls (no certificate check), http
(plain HTTP allowed), pubkey (keys may be fetched insecurely), ondisk (no re-hashing of stored
images), capabilities, paths, seccomp, limits (run although --memory/--cpu cannot be enforced on
this host); groups all-fetch (image, tls, http, pubkey), all-run (ondisk, capabilities, paths,
seccomp, limits) and all.
"""

from __future__ import annotations

from registry.records import record

FETCH_OPTIONS = ("image", "tls", "http", "pubkey")
RUN_OPTIONS = ("ondisk", "capabilities", "paths", "seccomp", "limits")
GROUPS = {"none": (), "all-fetch": FETCH_OPTIONS, "all-run": RUN_OPTIONS,
          "all": FETCH_OPTIONS + RUN_OPTIONS}
ALL_NAMES = ("none", *FETCH_OPTIONS, *RUN_OPTIONS, "all-fetch", "all-run", "all")

WARNINGS = {
    "image": "signature verification has been disabled (--insecure-options=image)",
    "tls": "TLS certificate verification has been disabled (--insecure-options=tls)",
    "http": "plain HTTP is allowed: images and signatures may be read or altered in transit "
            "(--insecure-options=http)",
    "pubkey": "public keys may be fetched without TLS verification or over plain HTTP "
              "(--insecure-options=pubkey)",
    "ondisk": "stored images are not re-verified on disk (--insecure-options=ondisk)",
}


@record(frozen=True)
class InsecureOptions:
    enabled: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None) -> InsecureOptions:
        """Parse `image,tls` etc.; raises ValueError naming the bad value and the valid ones."""
        enabled: set[str] = set()
        for raw in (text or "none").split(","):
            value = raw.strip().lower()
            if not value:
                continue
            if value in GROUPS:
                enabled.update(GROUPS[value])
            elif value in FETCH_OPTIONS or value in RUN_OPTIONS:
                enabled.add(value)
            else:
                raise ValueError(f'unknown insecure option "{value}"; valid options: '
                                 + ", ".join(ALL_NAMES))
        return cls(frozenset(enabled))

    def __or__(self, other: InsecureOptions) -> InsecureOptions:
        return InsecureOptions(self.enabled | other.enabled)

    def __contains__(self, name: str) -> bool:
        return name in self.enabled

    @property
    def skip_image_check(self) -> bool:
        return "image" in self.enabled

    @property
    def skip_tls_check(self) -> bool:
        return "tls" in self.enabled

    @property
    def allow_http(self) -> bool:
        return "http" in self.enabled

    @property
    def insecure_pubkey(self) -> bool:
        return "pubkey" in self.enabled

    def warnings(self) -> list[str]:
        return [WARNINGS[name] for name in ("image", "tls", "http", "pubkey", "ondisk")
                if name in self.enabled]

    def __str__(self) -> str:
        return ",".join(sorted(self.enabled)) or "none"
