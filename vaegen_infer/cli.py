"""The `vaegen-infer` command: a thin layer over the library. Each command parses its options,
calls one library function, and writes one file.

Errors are one line on stderr: exit code 2 for a bad request (unknown model, bad option value),
1 for a failure (damaged bundle, unreadable input). `--debug` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperGroup

from . import __version__
from .bundle import DEFAULT_MODEL, available, open_bundle
from .errors import VaegenError
from .providers import PROVIDER_CHOICES

_DEBUG_ENV = "VAEGEN_INFER_DEBUG"


def _usage_name(self: TyperArgument) -> str:
    """Arguments in usage lines as click writes them (IMAGES..., [IMAGE]); Typer 0.29 writes a
    required one as {images}... and adds a Python type such as <list[str]> that a user cannot act on."""
    name = self.display_name_raw.upper() + ("..." if self.nargs != 1 else "")
    return name if self.required else f"[{name}]"


TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
TyperArgument.display_type_rich = lambda self, ctx: None  # type: ignore[method-assign]


class _Group(TyperGroup):
    """Turns every failure into one line and an exit code; tracebacks only with --debug."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        debug = "--debug" in argv or os.environ.get(_DEBUG_ENV) == "1"
        try:
            code = super().main(argv, prog_name or "vaegen-infer", complete_var, False, windows_expand_args, **extra)
        except VaegenError as exc:
            if debug:
                raise
            _fail(str(exc), exc.exit_code)
        except typer.TyperException as exc:  # click's UsageError/BadParameter (exit 2), ClickException (1)
            if debug:
                raise
            _fail(_one_line(exc.format_message()), getattr(exc, "exit_code", 2))
        except typer.Abort:
            _fail("aborted", 130)
        except KeyboardInterrupt:
            _fail("interrupted", 130)
        except Exception as exc:
            if debug:
                raise
            _fail(f"unexpected {type(exc).__name__}: {_one_line(str(exc))} (run with --debug for the traceback)", 1)
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _fail(message: str, code: int) -> None:
    typer.echo(f"error: {message}", err=True)
    sys.exit(code)


app = typer.Typer(
    cls=_Group,
    help="Generate and edit images with VAE/AAE bundles exported to ONNX (no PyTorch needed).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)

ModelOpt = Annotated[
    str, typer.Option("--model", "-m", help="Bundle name (see `vaegen-infer models`) or path to a bundle directory.")
]
ProvidersOpt = Annotated[
    str,
    typer.Option(
        "--providers",
        help="auto: CUDA when it really runs, else CPU; cpu; cuda: fail unless CUDA is active.",
        show_default=True,
    ),
]
ThreadsOpt = Annotated[int | None, typer.Option("--threads", min=1, help="CPU threads (default: physical cores).")]
DeviceOpt = Annotated[int, typer.Option("--device-id", min=0, help="CUDA device to run on.")]
Tf32Opt = Annotated[
    bool, typer.Option("--tf32", help="CUDA: allow TF32 matmuls (faster on Ampere+, ~1e-3 error; off by default).")
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        help="float32; int8 (CPU) or fp16 (GPU) where the bundle carries that variant, else float32 with a note.",
        show_default=True,
    ),
]
CudaGraphOpt = Annotated[
    bool, typer.Option("--cuda-graph", help="CUDA: capture and replay one CUDA graph per batch size.")
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vaegen-infer {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
) -> None:
    """Generate and edit images with VAE/AAE bundles exported to ONNX (no PyTorch needed).

    Start with `vaegen-infer sample --n 64`, then `vaegen-infer models` to see what else is installed.
    """


def _load(
    model: str,
    providers: str,
    threads: int | None = None,
    device_id: int = 0,
    tf32: bool = False,
    cuda_graph: bool = False,
    precision: str = "float32",
    small_batch_threads: int | None = None,
) -> Any:
    from .manifest import PRECISIONS
    from .model import load

    if providers not in PROVIDER_CHOICES:
        raise typer.BadParameter(f"'{providers}' is not one of {', '.join(PROVIDER_CHOICES)}", param_hint="--providers")
    if precision not in PRECISIONS:
        raise typer.BadParameter(f"'{precision}' is not one of {', '.join(PRECISIONS)}", param_hint="--precision")
    with warnings.catch_warnings():  # the fallback is said below, in one line, not as a Python warning
        warnings.simplefilter("ignore", RuntimeWarning)
        g = load(
            model, providers=providers, threads=threads, device_id=device_id, tf32=tf32, cuda_graph=cuda_graph,
            precision=precision, small_batch_threads=small_batch_threads,
        )  # fmt: skip
    if g.precision != precision:
        typer.echo(f"note: {g.name} has no {precision} variant; running float32", err=True)
    return g


def _done(path: Path, what: str) -> None:
    typer.echo(f"wrote {path} ({what})")


MAX_GRID = 10_000  # images in one grid picture: 100 x 100 tiles of 58 px is already 5,800 px square
PROGRESS_FROM = 20_000  # show a progress bar on stderr from this many samples on
# Images per decode when streaming. ONNX Runtime's arena keeps the largest intermediates it has
# seen (a 4096-image batch holds ~100 MB of feature maps), so smaller runs bound the peak memory:
# measured peak RSS for 100,000 samples, 463 MB with 4096 per run, see README "errors and limits".
STREAM_CHUNK = 1024
# `sample` grids of more than this many images are written by grids.sample_png: compressed band by
# band while the next band decodes, zlib level STREAM_PNG_LEVEL (see benchmarks/results/png_path.md).
# Smaller ones keep Pillow's encoder, so the README's pictures stay byte for byte as they were.
STREAM_PNG_FROM = 1024
STREAM_PNG_LEVEL = 1
FORMATS_HELP = "png, jpg, webp, bmp, tiff or gif"


def _sample_output(fmt: str | None, output: Path | None) -> tuple[str, Path]:
    """Resolve --format and --output against each other: (npy or an image format name, path)."""
    from .images import IMAGE_FORMATS, image_format

    choices = ("npy", *IMAGE_FORMATS)
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in choices:
            raise typer.BadParameter(f"'{fmt}' is not one of npy, {', '.join(IMAGE_FORMATS)}", param_hint="--format")
    if output is None:
        output = Path(f"samples.{'png' if fmt is None else fmt}")
    if fmt is None:
        fmt = "npy" if output.suffix.lower() == ".npy" else image_format(output)
    if fmt == "npy" and output.suffix.lower() != ".npy":
        raise typer.BadParameter(f"--format npy writes a .npy file, not '{output.name}'", param_hint="--output")
    if fmt != "npy" and output.suffix.lower() == ".npy":
        raise typer.BadParameter("a .npy output needs --format npy", param_hint="--format")
    if fmt != "npy" and image_format(output) != fmt and {fmt, image_format(output)} != {"jpg", "jpeg"}:
        raise typer.BadParameter(f"--format {fmt} does not match the file name '{output.name}'", param_hint="--format")
    return fmt, output


@contextlib.contextmanager
def _progress(total: int, show: bool) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (rich, which typer brings) for long runs; a no-op otherwise."""
    if not show:
        yield lambda _k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    columns = ("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("sampling", total=total)
        yield lambda k: bar.advance(task, k)


LabelOpt = Annotated[
    str | None,
    typer.Option(
        "--label", help="Models whose decoder takes a label (supervised AAE, e.g. mnist-saae): draw every image as it."
    ),
]

OutDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--out-dir", help="Also (or, without --output, only) write each image as a numbered PNG in this directory."
    ),
]


def _write(
    grid: Any, output: Path | None, default: str, out_dir: Path | None, scale: int | None = None, files: Any = None
) -> str:
    """Write a grid as one picture (unless only --out-dir was given) and `files` (default: the
    grid's tiles) to --out-dir, one PNG each; return what was written, for the closing line."""
    from .images import save_image, save_images

    written = []
    if output is not None or out_dir is None:
        path = save_image(output or Path(default), grid.image(scale))
        written.append(str(path))
    if out_dir is not None:
        files = save_images(out_dir, grid.images if files is None else files)
        written.append(f"{len(files)} files in {out_dir}")
    return " and ".join(written)


@app.command()
def sample(
    n: Annotated[int, typer.Option("--n", "-n", help="How many images to generate.")] = 64,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Output file (default samples.png, or samples.npy with --format npy)."),
    ] = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help=f"An image format ({FORMATS_HELP}): one grid picture of up to 10,000 images; or npy: an "
            "(N, C, H, W) float32 array written in chunks, any N. Default: from the output's extension.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same images.")] = None,
    label: Annotated[str | None, typer.Option(help="Class to draw from (label-conditioned models only).")] = None,
    per_label: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="Label-conditioned models: a row of this many per label (label i: seed + i)."),
    ] = None,
    from_prior: Annotated[
        bool,
        typer.Option(
            help="Draw the codes from the prior the model was trained with, even where the bundle has a "
            "fitted sampler (`vaegen-infer info` shows it): to see what the prior alone gives."
        ),
    ] = False,
    model: ModelOpt = DEFAULT_MODEL,
    cols: Annotated[int | None, typer.Option(min=1, help="Grid columns (default: near-square).")] = None,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Upscale each image this many times.")] = 2,
    out_dir: OutDirOpt = None,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
    threads: ThreadsOpt = None,
    device_id: DeviceOpt = 0,
    tf32: Tf32Opt = False,
    cuda_graph: CudaGraphOpt = False,
) -> None:
    """Draw N images and write them as one grid image.

    Codes come from the bundle's sampler where it has one (a density fitted at export to the
    training images' codes, for models whose codes fill the prior unevenly), else from the prior.
    Label-conditioned models (see `vaegen-infer models`) draw from one class with --label, or show
    every class, a row each, with --per-label."""
    from . import grids
    from .model import check_count

    check_count(n)
    if per_label is not None and label is not None:
        raise typer.BadParameter("give either --label or --per-label, not both", param_hint="--per-label")
    fmt, path = _sample_output(fmt, output)
    if fmt == "npy" and (per_label is not None or out_dir is not None):
        raise typer.BadParameter("--per-label and --out-dir write pictures; drop --format npy", param_hint="--format")
    if fmt != "npy" and n > MAX_GRID and per_label is None and out_dir is None:
        raise typer.BadParameter(
            f"{n:,} images do not fit in one picture (at most {MAX_GRID:,}); use --format npy", param_hint="--n"
        )
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    g = _load(model, providers, threads, device_id, tf32, cuda_graph, precision=precision)
    # say where the codes came from when the bundle offers two sources
    source = "" if g.manifest.sampler is None else (", from its prior" if from_prior else ", from its fitted sampler")
    if fmt == "npy":
        from .io import save_npy_stream

        with _progress(n, show=n >= PROGRESS_FROM) as advance:
            blocks = g.iter_samples(n, seed=seed, label=label, chunk=STREAM_CHUNK, from_prior=from_prior)
            written = save_npy_stream(path, (n, *g.image_shape), blocks, advance)
        _done(written, f"{n:,} samples as a float32 array {(n, *g.image_shape)} from {g.name}{source}, seed {seed}")
        return
    if per_label is not None:
        grid = grids.per_label_grid(g, per_label, seed)
        what = _write(grid, output, str(path), out_dir, scale)
        typer.echo(f"wrote {what} ({per_label} samples for each of {grid.shape[0]} labels from {g.name}, seed {seed})")
        return
    if fmt == "png" and out_dir is None and n > STREAM_PNG_FROM:  # decode and compress at once
        from .io import write_bytes

        written = write_bytes(
            path, lambda fh: grids.sample_png(g, n, seed, fh, label, cols, scale, STREAM_PNG_LEVEL, from_prior)
        )
        what = str(written)
    else:
        grid = grids.sample_grid(g, n, seed, label=label, cols=cols, from_prior=from_prior)
        what = _write(grid, output, str(path), out_dir, scale)
    of_label = f" of label {label}" if label is not None else ""
    typer.echo(f"wrote {what} ({_plural(n, 'sample')}{of_label} from {g.name}{source}, seed {seed})")


def _labels_summary(labels: Sequence[str] | None, conditional: bool) -> str:
    if not labels:
        return "-"
    text = ",".join(labels) if len(",".join(labels)) <= 24 else f"{labels[0]}..{labels[-1]} ({len(labels)})"
    return text + (" (by label)" if conditional else "")


@app.command()
def models() -> None:
    """List the bundles that --model can name: shipped with the package or made by you."""
    found = available()
    if not found:
        typer.echo("no bundles found")
        return
    rows = [("NAME", "KIND", "LATENT", "PRIOR", "IMAGE", "LABELS", "ORIGIN", "DESCRIPTION")]
    for name, (path, origin) in found.items():
        try:
            m = open_bundle(path).manifest
        except VaegenError as exc:
            rows.append((name, "?", "?", "?", "?", "?", origin, f"damaged: {exc}"))
            continue
        image = f"{m.image.channels}x{m.image.height}x{m.image.width}"
        labels = _labels_summary(m.labels, m.conditional or m.label_input is not None)
        rows.append((name, m.kind, str(m.latent_dim), m.prior.name, image, labels, origin, m.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])


@app.command()
def factors(
    output: Annotated[Path, typer.Option("--output", "-o", help="Heat map PNG to write [factors.png].")] = Path(
        "factors.png"
    ),
    model: ModelOpt = DEFAULT_MODEL,
) -> None:
    """Heat map of the mutual information between each latent dimension and each ground-truth factor,
    from the bundle's latent_factors table (dSprites bundles; needs its full `mi` matrix)."""
    from .errors import UsageError
    from .factors import mi_heatmap
    from .io import write_bytes

    g = _load(model, "cpu")
    table = g.manifest.latent_factors
    if not table or "mi" not in table or "factors" not in table:
        raise UsageError(
            f"model '{g.manifest.name}' stores no latent_factors.mi matrix; re-export it from a dSprites run"
        )
    per_dim = table["per_dim"]
    labels = [f"z{d} {e['factor']}" for d, e in enumerate(per_dim)]
    points = table.get("protocol", {}).get("num_train")
    title = "mutual information: latent dimensions x factors" + (f" ({points:,} points)" if points else "")
    picture = mi_heatmap(table["mi"], table["factors"], dim_labels=labels, title=title)
    path = write_bytes(output, lambda fh: picture.save(fh, format="PNG"))
    typer.echo(f"wrote {path} ({len(per_dim)} dimensions x {len(table['factors'])} factors)")


@app.command()
def info(
    model: ModelOpt = DEFAULT_MODEL,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
    threads: ThreadsOpt = None,
    device_id: DeviceOpt = 0,
    tf32: Tf32Opt = False,
) -> None:
    """Show a bundle's manifest summary, its metrics, and which execution provider runs it."""
    g = _load(model, providers, threads, device_id, tf32, precision=precision)
    m = g.manifest
    started = time.perf_counter()
    g.session_for("decoder", 1)  # creates the session a single image runs on, and checks the graph
    ms = (time.perf_counter() - started) * 1000
    active = g.provider("decoder")
    likelihood = m.image.likelihood
    if likelihood == "gaussian":
        import math

        likelihood += f" (sigma {math.exp(m.image.log_sigma):.4g})"
    pre = m.image.preprocess
    lines = [
        f"name:        {m.name}",
        f"kind:        {m.kind}",
        f"description: {m.description or '-'}",
        f"path:        {g.bundle.path} ({g.bundle.origin})",
        f"image:       {m.image.channels}x{m.image.height}x{m.image.width}, values in "
        f"[{m.image.value_range[0]:g}, {m.image.value_range[1]:g}], {likelihood} likelihood, {m.image.data_kind} data",
        f"preprocess:  {'centre crop ' + str(pre.crop) + ', ' if pre.crop else ''}"
        f"{'crop to the aspect ratio, ' if pre.aspect == 'keep' else ''}resize {pre.resize}",
        f"latent:      {m.latent_dim} dimensions, prior {g.prior.describe()}",
        f"sampler:     {'the prior' if m.sampler is None else 'fitted to the training codes: ' + g.sampler.describe()}",
        f"labels:      {', '.join(m.labels) if m.labels else '-'}"
        + (" (sample by label)" if m.conditional else "")
        + (f" (decoder input '{m.label_input}': every image is drawn as a label; restyle)" if m.label_input else ""),
        f"attributes:  {', '.join(m.attributes) or '-'}",
        f"precision:   {g.precision} (variants: {', '.join(['float32', *m.variants])})",
        f"provider:    {active} (requested {providers}; session created in {ms:.0f} ms), "
        + (f"{g.threads()} CPU threads" if active == "cpu" else f"device {device_id}, TF32 {'on' if tf32 else 'off'}"),
    ]
    if m.latent_factors:
        per_dim = m.latent_factors["per_dim"]
        lines.append("factors:     " + ", ".join(f"z{d} {e['factor']}" for d, e in enumerate(per_dim)))
    for key, value in m.metrics.items():
        if isinstance(value, dict) and value and all(isinstance(v, dict) and "score" in v for v in value.values()):
            for sub, entry in value.items():  # a group of scored metrics (disentanglement): one line each
                lines.append(f"metric:      {key}.{sub} = {_fmt_metric(entry)}{_fmt_points(entry)}")
        else:
            lines.append(f"metric:      {key} = {_fmt_metric(value)}")
    producer = m.producer
    if producer:
        lines.append(
            f"exported by: torch {producer.get('torch', '?')}, {producer.get('exporter', '?')} exporter, "
            f"opset {producer.get('opset', '?')}"
        )
    typer.echo("\n".join(lines))


# -- image-based commands ---------------------------------------------------------------------

ImagesArg = Annotated[
    list[str],
    typer.Argument(
        metavar="IMAGES", help="Image files, directories (their images) or glob patterns; any Pillow format."
    ),
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse images of the wrong size instead of resizing.")]
InvertOpt = Annotated[bool, typer.Option("--invert", help="Invert grey levels (dark strokes on light paper).")]
ScaleOpt = Annotated[int, typer.Option(min=1, max=16, help="Upscale each tile this many times.")]


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


NOTES_PER_KIND = 3  # per-file notes of one kind (a resize, a light background) said; the rest counted


def _images(g: Any, items: list[str], strict: bool, invert: bool) -> tuple[Any, list[Path]]:
    notes: list[str] = []
    try:
        return g.load_images(items, strict=strict, invert=invert, note=notes.append)
    finally:  # said also when a later file fails, so the notes before it are not lost
        _say_notes(notes)


def _say_notes(notes: list[str]) -> None:
    """"NAME: what happened" notes, grouped by what happened (numbers aside): the first
    NOTES_PER_KIND of each kind, then how many more, so a folder of 1,000 photos gives a few lines."""
    kinds: dict[str, list[str]] = {}
    for message in notes:
        _, sep, what = message.partition(": ")
        kinds.setdefault(re.sub(r"\d+", "#", what) if sep else message, []).append(message)
    for messages in kinds.values():
        for message in messages[:NOTES_PER_KIND]:
            _note(message)
        if len(messages) > NOTES_PER_KIND:
            more = len(messages) - NOTES_PER_KIND
            _note(f"... and {more} more image{'s' if more > 1 else ''} like that")


def _names(paths: Sequence[Path], limit: int = 14) -> list[str]:
    from .grids import short_name

    return [short_name(p.stem, limit) for p in paths]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@app.command()
def encode(
    images: ImagesArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="latents.npy (mu, N x D) or latents.json (mu, logvar).")
    ] = Path("latents.npy"),
    model: ModelOpt = DEFAULT_MODEL,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Encode images to latent codes: the posterior means mu (and log-variances in JSON)."""
    from .io import save_json, save_npy

    suffix = output.suffix.lower()
    if suffix not in (".npy", ".json"):
        raise typer.BadParameter(f"'{output.name}' must end in .npy or .json", param_hint="--output")
    g = _load(model, providers, precision=precision)
    x, paths = _images(g, images, strict, invert)
    mu, logvar = g.encode(x)
    if suffix == ".npy":
        save_npy(output, mu)
    else:
        save_json(output, {
            "model": g.name, "latent_dim": g.latent_dim, "inputs": [str(p) for p in paths],
            "mu": mu.tolist(), "logvar": logvar.tolist(),
        })  # fmt: skip
    _done(output, f"{_plural(len(paths), 'code')} of {g.latent_dim} dimensions from {g.name}")


@app.command()
def decode(
    latents: Annotated[
        Path, typer.Argument(metavar="CODES", help="Codes: .npy (N x D or D) or .json (from encode, or lists).")
    ],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output image grid [decoded.png].")] = None,
    model: ModelOpt = DEFAULT_MODEL,
    cols: Annotated[int | None, typer.Option(min=1, help="Grid columns (default: near-square).")] = None,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Decode latent codes to images, written as one grid."""
    from . import grids
    from .latentfile import read_latents

    g = _load(model, providers, precision=precision)
    grid = grids.decode_grid(g, read_latents(latents), cols=cols, label=label)
    what = _write(grid, output, "decoded.png", out_dir, scale)
    typer.echo(f"wrote {what} ({_plural(grid.n, 'image')} from {g.name})")


@app.command()
def reconstruct(
    images: ImagesArg,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output grid: inputs above reconstructions [reconstruct.png].")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    sample: Annotated[bool, typer.Option("--sample", help="Decode z ~ q(z|x) instead of the mean mu.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for --sample.")] = 0,
    cols: Annotated[int, typer.Option(min=1, help="Images per row.")] = 10,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Encode and decode images; the grid shows each input above its reconstruction."""
    from . import grids

    g = _load(model, providers, precision=precision)
    x, _ = _images(g, images, strict, invert)
    grid = grids.reconstruct_grid(g, x, cols=cols, sample=sample, seed=seed, label=label)
    outputs = grid.tiles[1::2].reshape(-1, *g.image_shape)[: len(x)]  # the output rows: one file per input
    what = _write(grid, output, "reconstruct.png", out_dir, scale, files=outputs)
    typer.echo(f"wrote {what} ({_plural(len(x), 'reconstruction')} by {g.name})")


LOOPS = ("bounce", "forward")


@app.command()
def interpolate(
    anchors: Annotated[
        list[str],
        typer.Argument(
            metavar="ANCHORS", help="Two or more images (A B C ...), or one .npy/.json file of two or more codes."
        ),
    ],
    steps: Annotated[int, typer.Option(help="Images per segment, both ends included (>= 2).")] = 10,
    method: Annotated[str, typer.Option(help="slerp (keeps the norm, for Gaussian priors) or lerp.")] = "slerp",
    output: Annotated[
        Path, typer.Option("--output", "-o", help=".png grid (a row per segment) or .gif animation.")
    ] = Path("interpolate.png"),
    loop: Annotated[
        str, typer.Option(help="GIF only: bounce (A to B and back, no jump) or forward (A to B, then restart).")
    ] = "bounce",
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Walk through latent space from A to B (to C ...) and decode the path.

    A grid shows one row per segment, so an inner anchor ends one row and starts the next. A GIF
    shows each image of the path once per pass; with --loop bounce it plays back again."""
    from . import grids
    from .images import save_gif, save_images
    from .latent import METHODS
    from .latentfile import read_latents

    if method not in METHODS:
        raise typer.BadParameter(f"'{method}' is not one of {', '.join(METHODS)}", param_hint="--method")
    if loop not in LOOPS:
        raise typer.BadParameter(f"'{loop}' is not one of {', '.join(LOOPS)}", param_hint="--loop")
    g = _load(model, providers, precision=precision)
    if len(anchors) == 1 and Path(anchors[0]).suffix.lower() in (".npy", ".json"):
        points = list(read_latents(Path(anchors[0])))
        names = [f"z{i}" for i in range(len(points))]
    else:
        x, paths = _images(g, anchors, strict, invert)
        points, names = list(x), _names(paths, 10)
    if len(points) < 2:
        raise typer.BadParameter("interpolation needs at least two anchors", param_hint="ANCHORS")
    if output.suffix.lower() == ".gif":
        frames = g.interpolate(*points, steps=steps, method=method, label=label)  # ((K-1)(steps-1)+1, C, H, W)
        shown = save_gif(output, frames, scale=max(scale, 3), loop=loop)
        if out_dir is not None:
            save_images(out_dir, frames)
        typer.echo(f"wrote {output} ({len(frames)} images on the path, {shown} frames with --loop {loop}, "
                   f"{method}, {len(points)} anchors)")  # fmt: skip
        return
    grid = grids.interpolate_grid(g, points, steps=steps, method=method, names=names, label=label)
    rows, cols = grid.shape
    what = _write(grid, output, "interpolate.png", out_dir, scale)
    typer.echo(f"wrote {what} ({rows * cols} tiles: {_plural(rows, 'segment')} of {cols} steps, {method})")


@app.command()
def shift(
    images: ImagesArg,
    attribute: Annotated[
        str, typer.Option("--attribute", "-a", help="Direction name; see `vaegen-infer attributes list`.")
    ],
    amounts: Annotated[str, typer.Option(help="Comma-separated multiples of the direction.")] = "-2,-1,0,1,2",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Grid: a row per image, a column per amount [shift.png].")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Move images along a named attribute direction (mu + amount * v) and decode.

    `vaegen-infer attributes list --model NAME` shows a bundle's directions and what amount 1
    means for each (for mnist-vae's thickness, slant and width: one standard deviation of that
    property in the training images; for digit-k: from the average digit to the average k)."""
    from . import grids, latent

    values = latent.parse_amounts(amounts)
    g = _load(model, providers, precision=precision)
    g.attribute(attribute)  # fail on an unknown name before reading any image
    x, paths = _images(g, images, strict, invert)
    grid = grids.shift_grid(g, x, attribute, values, names=_names(paths), label=label)
    what = _write(grid, output, "shift.png", out_dir, scale)
    typer.echo(f"wrote {what} ({_plural(len(paths), 'image')} x {len(values)} amounts of '{attribute}')")


@app.command()
def traverse(
    image: Annotated[
        str | None, typer.Argument(metavar="IMAGE", help="Image whose code is the centre (default: the prior's mean).")
    ] = None,
    dims: Annotated[
        str | None,
        typer.Option(help="Dimensions: 0-7, 3 or 0,2,5 (default: the 8 most used, as `info` orders them)."),
    ] = None,
    span: Annotated[
        float, typer.Option(help="Vary each dimension over the prior mean +- span prior standard deviations.")
    ] = 3.0,
    steps: Annotated[int, typer.Option(help="Values per dimension (>= 2).")] = 9,
    factor: Annotated[
        str | None,
        typer.Option(help="Bundles with latent_factors (dSprites): the dimension capturing this factor, e.g. scale."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Output grid: a row per dimension [traverse.png].")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Vary one latent dimension at a time, the others held at the image's code (or the prior's mean).

    Dimensions are ordered most used first: by their KL on validation images when the bundle
    records it (Gaussian-prior VAEs), else by the variance of mu across validation images."""
    from . import grids, latent

    if not span > 0 or span != span or span == float("inf"):
        raise typer.BadParameter(f"span must be a positive number, got {span}", param_hint="--span")
    g = _load(model, providers, precision=precision)
    order = latent.parse_dims(dims, g.latent_dim) if dims else None
    if factor is not None:
        from .errors import UsageError
        from .factors import dim_for_factor

        if dims:
            raise typer.BadParameter("give --dims or --factor, not both", param_hint="--factor")
        if not g.manifest.latent_factors:
            raise UsageError(f"model '{g.manifest.name}' has no latent_factors table; --factor needs one (dSprites)")
        order = [dim_for_factor(g.manifest.latent_factors["per_dim"], factor)]
    base = None
    if image is not None:
        x, _ = _images(g, [image], strict, invert)
        if len(x) != 1:
            raise typer.BadParameter(f"'{image}' names {len(x)} images; traverse takes one", param_hint="IMAGE")
        base = x[0]
    grid = grids.traverse_grid(g, base, dims=order, span=span, steps=steps, label=label)
    what = _write(grid, output, "traverse.png", out_dir, scale)
    typer.echo(f"wrote {what} ({_plural(grid.shape[0], 'dimension')} x {steps} values, span {span:g} sd)")


def _pair(dims: str | None, latent_dim: int) -> list[int] | None:
    from . import latent

    if not dims:
        return None
    chosen = latent.parse_dims(dims, latent_dim)
    if len(chosen) != 2:
        raise typer.BadParameter(f"give exactly two dimensions, got {dims}", param_hint="--dims")
    return chosen


@app.command()
def manifold(
    n: Annotated[int, typer.Option("--n", "-n", min=2, max=100, help="Grid size: n x n images.")] = 20,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Output image [manifold.png].")] = None,
    model: ModelOpt = "mnist-vae-2d",
    dims: Annotated[
        str | None, typer.Option(help="Two dimensions, e.g. 0,1 (default: the two most used, in index order).")
    ] = None,
    scale: ScaleOpt = 1,
    out_dir: OutDirOpt = None,
    label: LabelOpt = None,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Decode a grid over the prior's quantiles of two latent dimensions (the classic MNIST manifold)."""
    from . import grids

    g = _load(model, providers, precision=precision)
    grid = grids.manifold_grid(g, n, _pair(dims, g.latent_dim), label=label)
    typer.echo(f"wrote {_write(grid, output, 'manifold.png', out_dir, scale)} ({n}x{n} manifold of {g.name})")


def parse_labels(text: str, names: Sequence[str]) -> list[str]:
    """--labels: comma-separated label names or indices, with ranges of indices (0-9, 0-4,7) -> label
    names; unknown ones fail with the valid list."""
    chosen: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if sep and part not in names and lo.strip().isdigit() and hi.strip().isdigit():
            a, b = int(lo), int(hi)
            if a > b or b >= len(names):
                raise typer.BadParameter(
                    f"range '{part}' must run upwards within 0-{len(names) - 1} ({', '.join(names)})",
                    param_hint="--labels",
                )
            chosen += [names[i] for i in range(a, b + 1)]
        elif part in names:
            chosen.append(part)
        elif part.isdigit() and int(part) < len(names):
            chosen.append(names[int(part)])
        else:
            raise typer.BadParameter(f"unknown label '{part}'; valid labels: {', '.join(names)}", param_hint="--labels")
    if not chosen:
        raise typer.BadParameter("give at least one label, e.g. 0-9 or 3,5", param_hint="--labels")
    return chosen


@app.command()
def restyle(
    images: ImagesArg,
    labels: Annotated[
        str | None,
        typer.Option(help="Labels to draw each image as: names or indices, ranges allowed (0-9, 1,4,7); default all."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Grid: a row per image, a column per label [restyle.png].")
    ] = None,
    model: ModelOpt = "mnist-saae",
    show_input: Annotated[bool, typer.Option("--show-input", help="Put each input image in a first column.")] = False,
    scale: ScaleOpt = 2,
    out_dir: OutDirOpt = None,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Draw each image's style (slant, thickness...) as each label: a supervised AAE's decoder takes
    the label beside the code, so the code of an image holds its style alone (Makhzani et al. 2015,
    Figure 7). Models whose decoder takes no label refuse."""
    from . import grids
    from .errors import UsageError

    g = _load(model, providers, precision=precision)
    if not g.label_decoder:
        raise UsageError(
            f"model '{g.name}' has no label input on its decoder, so it cannot restyle; use a supervised AAE "
            "such as mnist-saae"
        )
    chosen = parse_labels(labels, g.label_names()) if labels is not None else g.label_names()
    x, paths = _images(g, images, strict, invert)
    grid = grids.restyle_grid(g, x, chosen, names=_names(paths), show_input=show_input)
    files = grid.tiles[:, 1:] if show_input else None  # --out-dir: the restyled images only
    what = _write(
        grid, output, "restyle.png", out_dir, scale, files=None if files is None else files.reshape(-1, *g.image_shape)
    )
    typer.echo(f"wrote {what} ({_plural(len(paths), 'image')} x {_plural(len(chosen), 'label')} by {g.name})")


@app.command("latent-map")
def latent_map_command(
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Labelled images: an MNIST IDX directory (t10k-*/train-*-ubyte[.gz]), or a folder with one "
            "sub-folder per class named as the model's labels (see `info`).",
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image.")] = Path("latent-map.png"),
    model: ModelOpt = "mnist-aae",
    limit: Annotated[int, typer.Option(min=1, help="Plot at most this many images (the first ones).")] = 10_000,
    dims: Annotated[
        str | None, typer.Option(help="Two dimensions, e.g. 0,1 (default: the two most used, in index order).")
    ] = None,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Plot labelled images' codes, coloured by class, over the prior's density (2-D view)."""
    from . import grids
    from .datasets import load_labelled
    from .images import save_image

    g = _load(model, providers, precision=precision)
    pair = _pair(dims, g.latent_dim)
    from .preprocess import Preprocess

    x, y, names = load_labelled(data, g.image_shape, g.manifest.labels, Preprocess.from_image_spec(g.manifest.image))
    x, y = x[:limit], y[:limit]
    save_image(output, grids.latent_map(g, x, y, dims=pair, label_names=names))
    _done(output, f"{_plural(len(x), 'code')} of {g.name}")


@app.command()
def score(
    images: ImagesArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="CSV file, one row per image.")] = Path("scores.csv"),
    model: ModelOpt = DEFAULT_MODEL,
    k: Annotated[int, typer.Option("-k", "--samples", min=1, max=100_000, help="Importance samples per image.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the importance samples.")] = 0,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
) -> None:
    """Score how likely each image is under the model: the importance-weighted bound on log p(x).

    Higher log-likelihood (lower bits per dimension) means more like the training images; images
    unlike them (another kind of picture, noise) score low, which is how a VAE flags anomalies.
    The CSV has file, log_likelihood_nats and bits_per_dim columns; for binary data (MNIST) nats
    per image are the usual unit, for 8-bit photos bits per dimension."""
    import numpy as np

    from .io import write_bytes
    from .likelihoods import bits_per_dim

    if output.suffix.lower() != ".csv":
        raise typer.BadParameter(f"'{output.name}' must end in .csv", param_hint="--output")
    g = _load(model, providers, precision=precision)
    x, paths = _images(g, images, strict, invert)
    with warnings.catch_warnings(record=True) as caught:  # said below as one-line notes
        warnings.simplefilter("always", RuntimeWarning)
        ll = g.score(x, k=k, seed=seed)  # (N,) nats
    for w in caught:
        typer.echo(f"note: {w.message}", err=True)
    bpd = bits_per_dim(ll, int(np.prod(g.image_shape)))
    lines = ["file,log_likelihood_nats,bits_per_dim"]
    lines += [f"{_csv_field(str(p))},{a:.4f},{b:.5f}" for p, a, b in zip(paths, ll, bpd)]
    write_bytes(output, lambda fh: fh.write(("\n".join(lines) + "\n").encode()))
    best = f"{bpd.mean():.4f} bits/dim" if g.score_units == "bits/dim" else f"{ll.mean():.2f} nats"
    _done(output, f"{_plural(len(paths), 'image')} scored by {g.name}, k={k}; mean {best}")


def _csv_field(text: str) -> str:
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


attributes_app = typer.Typer(
    help="List a bundle's attribute directions, or add your own from two folders of images.", no_args_is_help=True
)
app.add_typer(attributes_app, name="attributes")


@attributes_app.command("list")
def attributes_list(model: ModelOpt = DEFAULT_MODEL) -> None:
    """Show the attribute directions a bundle holds."""
    import numpy as np

    m = open_bundle(model).manifest
    if not m.attributes:
        typer.echo(f"{m.name} has no attributes; add one with `vaegen-infer attributes add`")
        return
    width = max(len(k) for k in m.attributes)
    typer.echo(f"{'NAME'.ljust(width)}  SOURCE   KIND        |v|    DESCRIPTION")
    for key, a in m.attributes.items():
        desc = a.description + (f" (amount 1: {a.amount})" if a.amount else "")
        norm = float(np.linalg.norm(a.vector))
        typer.echo(f"{key.ljust(width)}  {a.source:<7}  {a.kind:<10}  {norm:5.2f}  {desc}")


@attributes_app.command("add")
def attributes_add(
    name: Annotated[str, typer.Option("--name", help="Name of the new direction, e.g. smiling.")],
    with_: Annotated[list[str], typer.Option("--with", help="Images that have the attribute (files, folders, globs).")],
    without: Annotated[list[str], typer.Option("--without", help="Images that lack it.")],
    model: ModelOpt = DEFAULT_MODEL,
    description: Annotated[str, typer.Option(help="One line for `attributes list`.")] = "",
    replace: Annotated[bool, typer.Option("--replace", help="Recompute an existing user attribute.")] = False,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
) -> None:
    """Store v = mean(code | with) - mean(code | without) in your copy of the bundle.

    A shipped bundle is never modified: it is first copied to your bundle directory
    ($VAEGEN_INFER_HOME/bundles, or ~/.local/share/vaegen-infer/bundles), and loading the model by
    name then finds your copy."""
    from .attributes import add_attribute

    added = add_attribute(model, name, with_, without, description, replace, strict, invert, note=_note)
    if added.copied_from is not None:
        _note(f"copied {added.copied_from} to {added.bundle_path} (the shipped bundle is unchanged)")
    import numpy as np

    typer.echo(
        f"added attribute '{name}' to {added.bundle_path} ({added.n_with} with, {added.n_without} without, "
        f"|v| = {float(np.linalg.norm(added.attribute.vector)):.2f})"
    )


@app.command()
def bench(
    model: ModelOpt = DEFAULT_MODEL,
    ops: Annotated[str, typer.Option(help="Comma-separated: encode, decode, sample, sample-png.")] = (
        "encode,decode,sample,sample-png"
    ),
    batches: Annotated[str, typer.Option(help="Comma-separated batch sizes.")] = "1,8,64,512,4096",
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls before each cell.")] = 3,
    budget: Annotated[float, typer.Option(min=0.0, help="Seconds of timed calls per cell (min: --min-repeats).")] = 1.0,
    min_repeats: Annotated[int, typer.Option(min=1, help="Fewest timed calls per cell.")] = 5,
    max_repeats: Annotated[int, typer.Option(min=1, help="Most timed calls per cell.")] = 200,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory for bench.json and bench.md.")] = Path(
        "bench-results"
    ),
    providers: ProvidersOpt = "auto",
    precision: PrecisionOpt = "float32",
    threads: ThreadsOpt = None,
    device_id: DeviceOpt = 0,
    tf32: Tf32Opt = False,
    cuda_graph: CudaGraphOpt = False,
) -> None:
    """Time this runtime: p50/p90/p99 latency and images per second per operation and batch size.

    For the comparison with raw ONNX Runtime and PyTorch, run benchmarks/latency.py from a checkout."""
    from .bench import bench_model, check_choices, markdown_table, write_report

    op_list = [o.strip() for o in ops.split(",") if o.strip()]
    try:
        batch_list = [int(b) for b in batches.split(",") if b.strip()]
    except ValueError:
        message = f"'{batches}' is not a comma-separated list of integers"
        raise typer.BadParameter(message, param_hint="--batches") from None
    check_choices(op_list, batch_list)
    g = _load(model, providers, threads, device_id, tf32, cuda_graph, precision=precision)

    def progress(t: Any) -> None:
        typer.echo(f"{t.operation} batch {t.batch}: p50 {t.p50_ms:.3f} ms", err=True)

    report = bench_model(
        g, op_list, batch_list, warmup=warmup, min_repeats=min_repeats, max_repeats=max(min_repeats, max_repeats),
        budget_s=budget, progress=progress,
    )  # fmt: skip
    json_path, md_path = write_report(report, output)
    typer.echo(markdown_table(report.timings))
    m = report.meta
    _done(json_path, f"and {md_path.name}: {m['provider']}, {m['threads']} threads, {m['cpu']}")


@app.command()
def serve(
    model: Annotated[
        list[str] | None,
        typer.Option("--model", "-m", help="Bundle name or path; repeat for several (default: every available one)."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps the API on this machine.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    batch_window_ms: Annotated[
        float, typer.Option(help="Gather requests for one graph this long (0: no batching).")
    ] = 2.0,
    max_batch: Annotated[int, typer.Option(min=1, help="Most rows in one batched graph call.")] = 256,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests waiting per graph; beyond it, 503.")] = 1024,
    max_n: Annotated[int, typer.Option(min=1, help="Most images one request may ask for.")] = 4096,
    max_upload_mb: Annotated[float, typer.Option(min=0.001, help="Largest request body, in MB.")] = 8.0,
    api_key_env: Annotated[
        str | None, typer.Option(help="Require 'Authorization: Bearer <key>', the key read from this variable.")
    ] = None,
    cors_origin: Annotated[
        list[str] | None, typer.Option(help="Allow browser calls from this origin (repeatable); CORS is off otherwise.")
    ] = None,
    providers: ProvidersOpt = "auto",
    threads: ThreadsOpt = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the models over HTTP (extra `serve`), with the latent-explorer page at http://HOST:PORT/.

    Every operation is `POST /v1/models/NAME/OPERATION`; the API documentation is at /docs."""
    from .errors import UsageError
    from .serve import Settings, check_installed, run, unsupported_label_decoder

    check_installed()  # before loading any model: say which extra is missing
    key = None
    if api_key_env is not None:
        key = os.environ.get(api_key_env)
        if not key:
            message = f"environment variable {api_key_env} is not set or empty"
            raise typer.BadParameter(message, param_hint="--api-key-env")
    if log_level not in ("debug", "info", "warning", "error"):
        raise typer.BadParameter(f"'{log_level}' is not one of debug, info, warning, error", param_hint="--log-level")
    try:
        settings = Settings(
            host=host, port=port, batch_window_ms=batch_window_ms, max_batch=max_batch, max_queue=max_queue,
            max_n=max_n, max_upload_bytes=int(max_upload_mb * 1024 * 1024), api_key=key,
            cors_origins=tuple(cors_origin or ()),
        )  # fmt: skip
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
    names = list(model) if model else list(available())
    loaded = {}
    for ref in names:
        # Small batches on one thread: a spinning ONNX Runtime pool would take the cores that the
        # event loop and the batcher need (see providers.session_options).
        g = _load(ref, providers, threads, small_batch_threads=1)
        if g.label_decoder:
            if model:  # asked for by name: refuse it
                raise typer.BadParameter(unsupported_label_decoder(g.name), param_hint="--model")
            _note(f"skipping {g.name}: its decoder takes a label (supervised AAE), which the server does not serve yet")
            continue
        if g.name in loaded:
            raise typer.BadParameter(f"two bundles are named '{g.name}'; serve one of them", param_hint="--model")
        loaded[g.name] = g
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (API docs at /docs)", err=True)
    run(loaded, settings, log_level)


@app.command("export-triton")
def export_triton(
    model: Annotated[
        list[str] | None, typer.Option("--model", "-m", help="Bundle name or directory; repeat for several.")
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="New directory for the model repository.")] = Path(
        "triton-repo"
    ),
    backend: Annotated[
        str, typer.Option(help="onnxruntime: graphs on Triton's ONNX Runtime backend; python: run by vaegen_infer.")
    ] = "onnxruntime",
    kind: Annotated[str, typer.Option(help="Where encoder/decoder instances run: gpu or cpu.")] = "gpu",
    max_batch_size: Annotated[int, typer.Option(min=1, help="Encoder/decoder max_batch_size.")] = 256,
    dynamic_batching: Annotated[
        bool, typer.Option("--dynamic-batching/--no-dynamic-batching", help="Triton's dynamic batcher.")
    ] = True,
    queue_delay_us: Annotated[int, typer.Option(min=0, help="Dynamic batcher's max queue delay, microseconds.")] = 500,
    instances: Annotated[int, typer.Option(min=1, help="Instances per encoder/decoder.")] = 1,
    sample_instances: Annotated[int, typer.Option(min=1, help="Instances of NAME-sample (CPU).")] = 4,
) -> None:
    """Write a Triton Inference Server model repository: NAME-encoder, NAME-decoder, NAME-sample.

    Default model: mnist-vae."""
    from .triton import export_repository

    result = export_repository(
        model or [DEFAULT_MODEL], output, backend=backend, kind=kind, max_batch_size=max_batch_size,
        dynamic_batching=dynamic_batching, queue_delay_us=queue_delay_us, instances=instances,
        sample_instances=sample_instances,
    )  # fmt: skip
    typer.echo(f"wrote {result.path}: {len(result.files)} files, models {', '.join(result.models)}")
    typer.echo(f"start Triton on it: see {result.path / 'README.md'}")


def _fmt_points(entry: dict[str, Any]) -> str:
    """' (N points)' from a metric's protocol, when it says how many points it used."""
    protocol = entry.get("protocol")
    n = protocol.get("num_train") if isinstance(protocol, dict) else None
    return f" ({n:,} training points)" if isinstance(n, int) else ""


def _fmt_metric(value: Any) -> str:
    if isinstance(value, dict):
        parts = [f"{k}={_fmt_metric(v)}" for k, v in value.items() if not isinstance(v, (dict, list))]
        return ", ".join(parts)
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point; tests pass `argv`."""
    command = typer.main.get_command(app)
    command.main(args=list(sys.argv[1:] if argv is None else argv), prog_name="vaegen-infer")


if __name__ == "__main__":
    main()
