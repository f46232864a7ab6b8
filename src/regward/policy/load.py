"""Loading a policy file: YAML parsing, validation and conversion to `regward.policy.model`.

Loading runs in three passes, and each pass reports all the problems it finds at once:

1. read and parse the YAML safely (no Python object tags, no duplicate keys, at most 1 MiB);
2. check the shape and single values with the pydantic models of `regward.policy._wire`;
3. check what needs the whole document or the disk: unique rule and authority names, key
   files that exist and contain PEM public keys of a supported type.

A later pass runs only when the earlier ones found nothing, because their input would be
incomplete. Key paths are resolved against the folder of the policy file.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from regward.policy._convert import Converter
from regward.policy._problems import problem_from_pydantic
from regward.policy._wire import PolicyWire
from regward.policy._yaml import parse_yaml
from regward.policy.errors import PolicyError, PolicyProblem
from regward.policy.model import Policy

logger = logging.getLogger(__name__)

MAX_POLICY_BYTES = 1024 * 1024
"""Maximum size of a policy file in bytes."""


def load_policy(path: str | Path) -> Policy:
    """Load and validate the policy file at `path`.

    Relative key paths in the file are resolved against the folder that contains it.

    Raises:
        PolicyError: the file cannot be read or is not a valid policy; the message lists
            every problem found, each with its key path.
    """
    policy_path = Path(path)
    source = str(policy_path)
    try:
        with policy_path.open("rb") as handle:
            data = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(
            source, [PolicyProblem("", f"cannot read the policy file: {exc.strerror or exc}")]
        ) from exc
    _check_size(source, len(data))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(
            source,
            [PolicyProblem("", f"expected UTF-8 text, got an invalid byte at offset {exc.start}")],
        ) from exc
    return _build(text, data, source, policy_path.parent)


def parse_policy(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> Policy:
    """Validate the policy document `text`.

    Args:
        text: the YAML document.
        source: name of the document in error messages and in `Policy.source`.
        base_dir: folder that relative key paths are resolved against; the current working
            directory when None.

    Raises:
        PolicyError: the text is not a valid policy; the message lists every problem found.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PolicyError(
            source,
            [
                PolicyProblem(
                    "", f"expected Unicode text, got a lone surrogate at offset {exc.start}"
                )
            ],
        ) from exc
    _check_size(source, len(data))
    return _build(text, data, source, base_dir if base_dir is not None else Path.cwd())


def _check_size(source: str, size: int) -> None:
    if size > MAX_POLICY_BYTES:
        raise PolicyError(
            source,
            [
                PolicyProblem(
                    "",
                    f"expected at most {MAX_POLICY_BYTES} bytes, got more than {MAX_POLICY_BYTES}",
                )
            ],
        )


def _build(text: str, data: bytes, source: str, base_dir: Path) -> Policy:
    # (1): YAML.
    document, root = parse_yaml(text, source)

    # (2): shape and single values.
    if document is None:
        raise PolicyError(
            source,
            [PolicyProblem("", "expected a mapping with the policy keys, got an empty document")],
        )
    try:
        wire = PolicyWire.model_validate(document)
    except ValidationError as exc:
        problems = [problem_from_pydantic(error, root) for error in exc.errors()]
        raise PolicyError(source, problems) from exc

    # (3): names and keys.
    converter = Converter(base_dir=base_dir, root=root)
    policy_parts = converter.convert(wire)
    if converter.problems:
        raise PolicyError(source, converter.problems)

    digest = hashlib.sha256(data)
    for key_bytes in converter.key_files.values():
        digest.update(key_bytes)
    default_action, blobs, rules = policy_parts
    if wire.admission is not None:
        _check_admission(wire.admission, source)
    policy = Policy(
        default_action=default_action,
        blobs=blobs,
        rules=rules,
        revision=digest.hexdigest(),
        source=source,
        admission=wire.admission,
    )
    logger.info(
        "loaded policy %s: revision %s, %d rules, %d key files",
        source,
        policy.revision,
        len(rules),
        len(converter.key_files),
    )
    return policy


def _check_admission(section: dict[str, Any], source: str) -> None:
    """Validate the `admission` section with the admission package's own model."""
    from regward.admission.config import parse_admission_settings
    from regward.admission.interface import AdmissionConfigError

    try:
        parse_admission_settings(section)
    except AdmissionConfigError as exc:
        raise PolicyError(source, [PolicyProblem("admission", str(exc))]) from exc
