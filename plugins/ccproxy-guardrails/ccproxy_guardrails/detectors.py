"""The built-in detectors: vendor API keys and tokens, private keys, JWTs (on by default), e-mail and phone (opt-in).

Each detector is one or more regular expressions (the `regex` module, version 0: Python `re` syntax), matched one by
one: glued into one alternation they would lose the `regex` module's fast scan for a literal start, and be 1000 times
slower on long requests. Every expression is bounded (no unbounded repetition), so a stream never holds back more
than one token's worth of text while a possible match is in progress, and starts with a literal or a simple class
(boundary checks come as lookbehinds after it) for the same fast scan. Boundaries are explicit character classes
rather than `\\b`, because `-` and `_` belong to most tokens. Where only part of a match is the secret, the
expression names it in a `secret` group (an AWS secret key after its label), and only that part is replaced.
An expression's literals are the strings every one of its matches starts with (see matcher.py, the screen).
"""

from __future__ import annotations

# Not part of a token before / after.
_START = r"(?<![A-Za-z0-9_-])"
_END = r"(?![A-Za-z0-9_-])"
_AWS_IDS = ("AKIA", "ASIA", "ABIA", "ACCA")
# (secret, access, key) as `aws_secret_access_key`, `SecretAccessKey` and `AWS_SECRET_ACCESS_KEY` spell them.
_AWS_LABELS = (("secret", "access", "key"), ("Secret", "Access", "Key"), ("SECRET", "ACCESS", "KEY"))
# 40 base64 characters with at least one digit: an AWS secret access key.
_AWS_SECRET = r"(?<![A-Za-z0-9/+])(?P<secret>(?=[A-Za-z/+]{0,39}[0-9])[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])"


def _aws_label(secret: str, access: str, key: str) -> str:
    return secret + r"[_ -]?(?:" + access + r"[_ -]?)?" + key + r"[\s\"':=,]{1,6}" + _AWS_SECRET


#: Detector name -> its expressions: (regular expression, the literals every match starts with). The literals let a
#: stream skip the regular expressions for text in which none of them occurs (most text); () for expressions that
#: start with a class (they are always searched).
DETECTORS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    "anthropic": ((_START + r"sk-ant-[A-Za-z0-9_-]{20,200}" + _END, ("sk-ant-",)),),
    # Legacy `sk-` + 48 characters, and project / service-account / admin keys; a digit is required so kebab-case
    # identifiers that happen to start with `sk-` are not taken for keys.
    "openai": (
        (
            _START + r"sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?(?=[A-Za-z_-]{0,250}[0-9])[A-Za-z0-9_-]{32,250}" + _END,
            ("sk-",),
        ),
    ),
    "github": (
        (_START + r"gh[pousr]_[A-Za-z0-9]{36,255}" + _END, ("ghp_", "gho_", "ghu_", "ghs_", "ghr_")),
        (_START + r"github_pat_[A-Za-z0-9_]{22,255}" + _END, ("github_pat_",)),
    ),
    "slack": ((_START + r"xox[abposre]-[A-Za-z0-9-]{10,250}" + _END, ("xox",)),),
    "aws_key_id": ((r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}(?![A-Za-z0-9])", _AWS_IDS),),
    # A secret access key shortly after an access key id, or right after a `secret (access) key` label (lower,
    # Capitalised or UPPER case: one expression each, as a literal start keeps the scan fast).
    "aws_secret": (
        (r"(?<![A-Za-z0-9])(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}[\s\S]{0,100}?" + _AWS_SECRET, _AWS_IDS),
        *((_aws_label(*spelling), (spelling[0],)) for spelling in _AWS_LABELS),
    ),
    "google": ((_START + r"AIza[0-9A-Za-z_-]{35}" + _END, ("AIza",)),),
    "stripe": (
        (_START + r"sk_(?:live|test)_[0-9A-Za-z]{16,247}" + _END, ("sk_live_", "sk_test_")),
        (_START + r"rk_(?:live|test)_[0-9A-Za-z]{16,247}" + _END, ("rk_live_", "rk_test_")),
    ),
    # From the BEGIN line to the END line, or to the end of the text when the END line never comes.
    "private_key": (
        (
            r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----[\s\S]{0,16000}?"
            r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----|\Z)",
            ("-----BEGIN",),
        ),
    ),
    "jwt": ((_START + r"eyJ[A-Za-z0-9_-]{8,2048}\.eyJ[A-Za-z0-9_-]{8,8192}\.[A-Za-z0-9_-]{0,2048}" + _END, ("eyJ",)),),
    "email": (
        (
            r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])",
            (),
        ),
    ),
    # +<country> numbers, and the North-American (555) 123-4567 / 555-123-4567 shapes. (`+` and `(` are too common
    # in code to be worth screening for.)
    "phone": (
        (r"(?<![\w+])\+[1-9][0-9]{0,2}[ .-]?(?:\([0-9]{1,4}\)[ .-]?)?[0-9]{1,4}(?:[ .-]?[0-9]{2,4}){2,4}(?!\w)", ()),
        (r"(?<![\w+])\([0-9]{3}\)[ .-]?[0-9]{3}[ .-][0-9]{4}(?!\w)", ()),
        (r"[0-9]{3}[.-][0-9]{3}[.-][0-9]{4}(?!\w)(?<![\w+][0-9]{3}[.-][0-9]{3}[.-][0-9]{4})", ()),
    ),
}

#: Names that stand for several detectors in `detectors = [...]`.
GROUPS: dict[str, tuple[str, ...]] = {
    "secrets": tuple(name for name in DETECTORS if name not in ("email", "phone")),
    "aws": ("aws_key_id", "aws_secret"),
}

#: What a redact rule uses when its table says nothing: every secret detector; e-mail and phone are opt-in.
DEFAULT_DETECTORS = ("secrets",)


def expand(names: list[str]) -> list[str]:
    """Detector names with groups expanded, in DETECTORS order, each once. Raises ValueError for unknown names."""
    wanted: set[str] = set()
    for name in names:
        if name in GROUPS:
            wanted.update(GROUPS[name])
        elif name in DETECTORS:
            wanted.add(name)
        else:
            known = ", ".join([*GROUPS, *DETECTORS])
            raise ValueError(f"unknown detector {name!r}; known: {known}")
    return [name for name in DETECTORS if name in wanted]
