"""The `vaegen-infer` command: a thin layer over the library. Each command parses its options,
calls one library function, and writes one file.

Errors are one line on stderr: exit code 2 for a bad request (unknown model, bad option value),
1 for a failure (damaged bundle, unreadable input). `--debug` shows the traceback instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import __version__
from .bundle import DEFAULT_MODEL, available, open_bundle
from .errors import VaegenError
from .providers import PROVIDER_CHOICES

_DEBUG_ENV = "VAEGEN_INFER_DEBUG"


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
) -> Any:
    from .model import load

    if providers not in PROVIDER_CHOICES:
        raise typer.BadParameter(f"'{providers}' is not one of {', '.join(PROVIDER_CHOICES)}", param_hint="--providers")
    return load(model, providers=providers, threads=threads, device_id=device_id, tf32=tf32, cuda_graph=cuda_graph)


def _done(path: Path, what: str) -> None:
    typer.echo(f"wrote {path} ({what})")


MAX_GRID = 10_000  # images in one grid picture: 100 x 100 tiles of 58 px is already 5,800 px square
PROGRESS_FROM = 20_000  # show a progress bar on stderr from this many samples on
# Images per decode when streaming. ONNX Runtime's arena keeps the largest intermediates it has
# seen (a 4096-image batch holds ~100 MB of feature maps), so smaller runs bound the peak memory:
# measured peak RSS for 100,000 samples, 463 MB with 4096 per run, see README "errors and limits".
STREAM_CHUNK = 1024


def _sample_output(fmt: str | None, output: Path | None) -> tuple[str, Path]:
    """Resolve --format and --output against each other: (png|npy, path)."""
    if fmt is not None and fmt not in ("png", "npy"):
        raise typer.BadParameter(f"'{fmt}' is not one of png, npy", param_hint="--format")
    if fmt is None:
        fmt = "npy" if output is not None and output.suffix.lower() == ".npy" else "png"
    if output is None:
        output = Path("samples.npy" if fmt == "npy" else "samples.png")
    if fmt == "npy" and output.suffix.lower() != ".npy":
        raise typer.BadParameter(f"--format npy writes a .npy file, not '{output.name}'", param_hint="--output")
    if fmt == "png" and output.suffix.lower() == ".npy":
        raise typer.BadParameter("a .npy output needs --format npy", param_hint="--format")
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
            help="png (or any image format): one grid picture, up to 10,000 images; npy: an (N, C, H, W) "
            "float32 array written in chunks, any N. Default: from the output's extension.",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same images.")] = None,
    label: Annotated[str | None, typer.Option(help="Class to draw from (label-conditioned models only).")] = None,
    per_label: Annotated[
        int | None, typer.Option(min=1, max=64, help="Label-conditioned models: a row of this many per label.")
    ] = None,
    model: ModelOpt = DEFAULT_MODEL,
    cols: Annotated[int | None, typer.Option(min=1, help="Grid columns (default: near-square).")] = None,
    scale: Annotated[int, typer.Option(min=1, max=16, help="Upscale each image this many times.")] = 2,
    providers: ProvidersOpt = "auto",
    threads: ThreadsOpt = None,
    device_id: DeviceOpt = 0,
    tf32: Tf32Opt = False,
    cuda_graph: CudaGraphOpt = False,
) -> None:
    """Draw N images from the model's prior and write them as one grid image.

    Label-conditioned models (see `vaegen-infer models`) draw from one class with --label, or show
    every class, a row each, with --per-label."""
    from .images import labelled_grid, make_grid, save_image
    from .model import check_count

    check_count(n)
    if per_label is not None and label is not None:
        raise typer.BadParameter("give either --label or --per-label, not both", param_hint="--per-label")
    fmt, output = _sample_output(fmt, output)
    if fmt == "png" and n > MAX_GRID and per_label is None:
        raise typer.BadParameter(
            f"{n:,} images do not fit in one picture (at most {MAX_GRID:,}); use --format npy", param_hint="--n"
        )
    if seed is None:
        seed = int.from_bytes(os.urandom(4), "little")
    g = _load(model, providers, threads, device_id, tf32, cuda_graph)
    if fmt == "npy":
        from .io import save_npy_stream

        if per_label is not None:
            raise typer.BadParameter("--per-label writes a picture; drop --format npy", param_hint="--per-label")
        with _progress(n, show=n >= PROGRESS_FROM) as advance:
            blocks = g.iter_samples(n, seed=seed, label=label, chunk=STREAM_CHUNK)
            path = save_npy_stream(output, (n, *g.image_shape), blocks, advance)
        _done(path, f"{n:,} samples as a float32 array {(n, *g.image_shape)} from {g.name}, seed {seed}")
        return
    if per_label is not None:
        names = g.manifest.labels or []
        g.label_index(names[0] if names else 0)  # refuses unconditional models with the usual message
        rows = [g.sample(per_label, seed=seed + i, label=name) for i, name in enumerate(names)]
        import numpy as np

        grid = labelled_grid(np.stack(rows), row_labels=names, scale=scale)
        path = save_image(output, grid)
        _done(path, f"{per_label} samples for each of {len(names)} labels from {g.name}, seed {seed}")
        return
    images = g.sample(n, seed=seed, label=label)  # (n, C, H, W)
    path = save_image(output, make_grid(images, cols=cols, scale=scale))
    what = f"{n} samples" + (f" of label {label}" if label is not None else "")
    _done(path, f"{what} from {g.name}, seed {seed}")


@app.command()
def models() -> None:
    """List the bundles that --model can name: shipped with the package or made by you."""
    found = available()
    if not found:
        typer.echo("no bundles found")
        return
    rows = [("NAME", "KIND", "LATENT", "PRIOR", "LABELS", "ORIGIN", "DESCRIPTION")]
    for name, (path, origin) in found.items():
        try:
            m = open_bundle(path).manifest
        except VaegenError as exc:
            rows.append((name, "?", "?", "?", "?", origin, f"damaged: {exc}"))
            continue
        labels = "by label" if m.conditional else "-"
        rows.append((name, m.kind, str(m.latent_dim), m.prior.name, labels, origin, m.description))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        typer.echo("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])


@app.command()
def info(
    model: ModelOpt = DEFAULT_MODEL,
    providers: ProvidersOpt = "auto",
    threads: ThreadsOpt = None,
    device_id: DeviceOpt = 0,
    tf32: Tf32Opt = False,
) -> None:
    """Show a bundle's manifest summary, its metrics, and which execution provider runs it."""
    g = _load(model, providers, threads, device_id, tf32)
    m = g.manifest
    started = time.perf_counter()
    active = g.provider("decoder")
    ms = (time.perf_counter() - started) * 1000
    lines = [
        f"name:        {m.name}",
        f"kind:        {m.kind}",
        f"description: {m.description or '-'}",
        f"path:        {g.bundle.path} ({g.bundle.origin})",
        f"image:       {m.image.channels}x{m.image.height}x{m.image.width}, values in "
        f"[{m.image.value_range[0]:g}, {m.image.value_range[1]:g}], {m.image.likelihood} likelihood",
        f"latent:      {m.latent_dim} dimensions, prior {g.prior.describe()}",
        f"labels:      {', '.join(m.labels) if m.labels else '-'}" + (" (sample by label)" if m.conditional else ""),
        f"attributes:  {', '.join(m.attributes) or '-'}",
        f"provider:    {active} (requested {providers}; session created in {ms:.0f} ms), "
        + (f"{g.threads()} CPU threads" if active == "cpu" else f"device {device_id}, TF32 {'on' if tf32 else 'off'}"),
    ]
    for key, value in m.metrics.items():
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
    list[str], typer.Argument(help="Image files, directories (their images) or glob patterns; any Pillow format.")
]
StrictOpt = Annotated[bool, typer.Option("--strict", help="Refuse images of the wrong size instead of resizing.")]
InvertOpt = Annotated[bool, typer.Option("--invert", help="Invert grey levels (dark strokes on light paper).")]
ScaleOpt = Annotated[int, typer.Option(min=1, max=16, help="Upscale each tile this many times.")]


def _note(message: str) -> None:
    typer.echo(f"note: {message}", err=True)


def _images(g: Any, items: list[str], strict: bool, invert: bool) -> tuple[Any, list[Path]]:
    from .images import load_images

    return load_images(items, g.image_shape, strict=strict, invert=invert, note=_note)


def _short(path: Path, limit: int = 14) -> str:
    name = path.stem
    return name if len(name) <= limit else name[: limit - 1] + "~"


def _signed(v: float) -> str:
    return f"{v:+g}" if v else "0"


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
) -> None:
    """Encode images to latent codes: the posterior means mu (and log-variances in JSON)."""
    from .io import save_json, save_npy

    suffix = output.suffix.lower()
    if suffix not in (".npy", ".json"):
        raise typer.BadParameter(f"'{output.name}' must end in .npy or .json", param_hint="--output")
    g = _load(model, providers)
    x, paths = _images(g, images, strict, invert)
    mu, logvar = g.encode(x)
    if suffix == ".npy":
        save_npy(output, mu)
    else:
        save_json(output, {
            "model": g.name, "latent_dim": g.latent_dim, "inputs": [str(p) for p in paths],
            "mu": mu.tolist(), "logvar": logvar.tolist(),
        })  # fmt: skip
    _done(output, f"{len(paths)} codes of {g.latent_dim} dimensions from {g.name}")


@app.command()
def decode(
    latents: Annotated[
        Path, typer.Argument(help="Codes: .npy (N x D or D) or .json (from encode, or a list of lists).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image grid.")] = Path("decoded.png"),
    model: ModelOpt = DEFAULT_MODEL,
    cols: Annotated[int | None, typer.Option(min=1, help="Grid columns (default: near-square).")] = None,
    scale: ScaleOpt = 2,
    providers: ProvidersOpt = "auto",
) -> None:
    """Decode latent codes to images, written as one grid."""
    from .images import make_grid, save_image
    from .latentfile import read_latents

    g = _load(model, providers)
    z = read_latents(latents)
    x = g.decode(z)
    save_image(output, make_grid(x, cols=cols, scale=scale))
    _done(output, f"{len(x)} images from {g.name}")


@app.command()
def reconstruct(
    images: ImagesArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output grid: inputs above reconstructions.")] = Path(
        "reconstruct.png"
    ),
    model: ModelOpt = DEFAULT_MODEL,
    sample: Annotated[bool, typer.Option("--sample", help="Decode z ~ q(z|x) instead of the mean mu.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed for --sample.")] = 0,
    cols: Annotated[int, typer.Option(min=1, help="Images per row.")] = 10,
    scale: ScaleOpt = 2,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
) -> None:
    """Encode and decode images; the grid shows each input above its reconstruction."""
    import numpy as np

    from .images import labelled_grid, save_image

    g = _load(model, providers)
    x, _ = _images(g, images, strict, invert)
    rec = g.reconstruct(x, sample=sample, seed=seed)
    n = len(x)
    cols = min(cols, n)
    rows = -(-n // cols)
    blank = np.zeros((rows * cols - n, *g.image_shape), np.float32)
    top = np.concatenate([x, blank]).reshape(rows, 1, cols, *g.image_shape)
    bottom = np.concatenate([rec, blank]).reshape(rows, 1, cols, *g.image_shape)
    tiles = np.concatenate([top, bottom], axis=1).reshape(2 * rows, cols, *g.image_shape)
    labels = ["input", "output"] * rows
    grid = labelled_grid(tiles, row_labels=labels, scale=scale, gap_after_rows=range(1, 2 * rows, 2))
    save_image(output, grid)
    _done(output, f"{n} reconstructions by {g.name}")


@app.command()
def interpolate(
    anchors: Annotated[list[str], typer.Argument(help="Two or more images (A B [C ...]), or one .npy/.json of codes.")],
    steps: Annotated[int, typer.Option(help="Images per segment, both ends included (>= 2).")] = 10,
    method: Annotated[str, typer.Option(help="slerp (keeps the norm, for Gaussian priors) or lerp.")] = "slerp",
    output: Annotated[
        Path, typer.Option("--output", "-o", help=".png grid (a row per segment) or .gif animation.")
    ] = Path("interpolate.png"),
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
) -> None:
    """Walk through latent space from A to B (to C ...) and decode the path."""
    from . import latent
    from .images import labelled_grid, save_gif, save_image
    from .latentfile import read_latents

    if steps < 2:
        raise typer.BadParameter(f"steps must be at least 2 (both ends included), got {steps}", param_hint="--steps")
    if method not in latent.METHODS:
        raise typer.BadParameter(f"'{method}' is not one of {', '.join(latent.METHODS)}", param_hint="--method")
    g = _load(model, providers)
    if len(anchors) == 1 and Path(anchors[0]).suffix.lower() in (".npy", ".json"):
        codes = read_latents(Path(anchors[0]))
        names = [f"z{i}" for i in range(len(codes))]
    else:
        x, paths = _images(g, anchors, strict, invert)
        codes = g.as_latents(list(x))
        names = [_short(p, 10) for p in paths]
    if len(codes) < 2:
        raise typer.BadParameter("interpolation needs at least two anchors", param_hint="ANCHORS")
    frames = g.decode(latent.path(codes, steps, method))  # ((K-1)(steps-1)+1, C, H, W)
    if output.suffix.lower() == ".gif":
        save_gif(output, frames, scale=max(scale, 3))
    else:
        segs = len(codes) - 1
        import numpy as np

        rows = [frames[i * (steps - 1) : i * (steps - 1) + steps] for i in range(segs)]
        tiles = np.stack(rows)  # (segments, steps, C, H, W)
        labels = [f"{names[i]}>{names[i + 1]}" for i in range(segs)] if segs > 1 else None
        save_image(output, labelled_grid(tiles, row_labels=labels, scale=scale))
    _done(output, f"{len(frames)} images, {method}, {len(codes)} anchors")


@app.command()
def shift(
    images: ImagesArg,
    attribute: Annotated[
        str, typer.Option("--attribute", "-a", help="Direction name; see `vaegen-infer attributes list`.")
    ],
    amounts: Annotated[str, typer.Option(help="Comma-separated multiples of the direction.")] = "-2,-1,0,1,2",
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output grid: a row per image, a column per amount.")
    ] = Path("shift.png"),
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
) -> None:
    """Move images along a named attribute direction (mu + amount * v) and decode.

    Built-in MNIST directions: thickness, slant, width (amount 1 = one standard deviation of that
    property in the training images) and digit-0 ... digit-9 (amount 1 = from the average digit to
    the average k)."""
    from . import latent
    from .images import labelled_grid, save_image

    values = latent.parse_amounts(amounts)
    g = _load(model, providers)
    g.attribute(attribute)  # fail on an unknown name before reading any image
    x, paths = _images(g, images, strict, invert)
    tiles = g.shift(x, attribute, values)  # (N, A, C, H, W)
    labels = [_short(p) for p in paths] if len(paths) > 1 else None
    save_image(output, labelled_grid(tiles, row_labels=labels, col_labels=[_signed(v) for v in values], scale=scale))
    n_img = len(paths)
    _done(output, f"{n_img} image{'s' if n_img != 1 else ''} x {len(values)} amounts of '{attribute}'")


@app.command()
def traverse(
    image: Annotated[
        str | None, typer.Argument(help="Image whose code is the centre (default: the prior's centre, 0).")
    ] = None,
    dims: Annotated[
        str | None, typer.Option(help="Dimensions: 0-7, 3 or 0,2,5 (default: the 8 most used, by KL).")
    ] = None,
    span: Annotated[
        float, typer.Option(help="Vary each dimension over the prior mean +- span prior standard deviations.")
    ] = 3.0,
    steps: Annotated[int, typer.Option(help="Values per dimension (>= 2).")] = 9,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output grid: a row per dimension.")] = Path(
        "traverse.png"
    ),
    model: ModelOpt = DEFAULT_MODEL,
    scale: ScaleOpt = 2,
    strict: StrictOpt = False,
    invert: InvertOpt = False,
    providers: ProvidersOpt = "auto",
) -> None:
    """Vary one latent dimension at a time, holding the others at the image's code (or 0)."""
    from . import latent
    from .images import labelled_grid, save_image

    if steps < 2:
        raise typer.BadParameter(f"steps must be at least 2, got {steps}", param_hint="--steps")
    if not span > 0 or span != span or span == float("inf"):
        raise typer.BadParameter(f"span must be a positive number, got {span}", param_hint="--span")
    g = _load(model, providers)
    order = latent.parse_dims(dims, g.latent_dim) if dims else g.dims_by_importance()[:8]
    base = None
    if image is not None:
        x, _ = _images(g, [image], strict, invert)
        if len(x) != 1:
            raise typer.BadParameter(f"'{image}' names {len(x)} images; traverse takes one", param_hint="IMAGE")
        base = x[0]
    tiles = g.traverse(base, dims=order, span=span, steps=steps)
    import numpy as np

    cols = [_signed(round(float(v), 2)) for v in np.linspace(-span, span, steps)]
    save_image(output, labelled_grid(tiles, row_labels=[f"z{d}" for d in order], col_labels=cols, scale=scale))
    _done(output, f"{len(order)} dimensions x {steps} values, span {span:g} sd")


@app.command()
def manifold(
    n: Annotated[int, typer.Option("--n", "-n", min=2, max=100, help="Grid size: n x n images.")] = 20,
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image.")] = Path("manifold.png"),
    model: ModelOpt = "mnist-vae-2d",
    dims: Annotated[str | None, typer.Option(help="Two dimensions, e.g. 0,1 (default: the two most used).")] = None,
    scale: ScaleOpt = 1,
    providers: ProvidersOpt = "auto",
) -> None:
    """Decode a grid over the prior's quantiles of two latent dimensions (the classic MNIST manifold)."""
    from . import latent
    from .images import make_grid, save_image

    g = _load(model, providers)
    pair = None
    if dims:
        chosen = latent.parse_dims(dims, g.latent_dim)
        if len(chosen) != 2:
            raise typer.BadParameter(f"give exactly two dimensions, got {dims}", param_hint="--dims")
        pair = (chosen[0], chosen[1])
    tiles = g.manifold(n, pair)  # (n, n, C, H, W)
    save_image(output, make_grid(tiles.reshape(n * n, *g.image_shape), cols=n, pad=0, scale=scale))
    _done(output, f"{n}x{n} manifold of {g.name}")


@app.command("latent-map")
def latent_map_command(
    data: Annotated[Path, typer.Option("--data", help="MNIST IDX directory, or a folder with a sub-folder per class.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output image.")] = Path("latent-map.png"),
    model: ModelOpt = "mnist-aae",
    limit: Annotated[int, typer.Option(min=1, help="Plot at most this many images (the first ones).")] = 10_000,
    dims: Annotated[str | None, typer.Option(help="Two dimensions, e.g. 0,1 (default: the two most used).")] = None,
    providers: ProvidersOpt = "auto",
) -> None:
    """Plot labelled images' codes, coloured by class, over the prior's density (2-D view)."""
    from . import latent
    from .datasets import load_labelled
    from .images import save_image
    from .plots import latent_map

    g = _load(model, providers)
    if g.latent_dim < 2:
        raise typer.BadParameter("a latent map needs at least 2 latent dimensions", param_hint="--model")
    pair = (0, 1) if g.latent_dim == 2 else tuple(g.dims_by_importance()[:2])
    if dims:
        chosen = latent.parse_dims(dims, g.latent_dim)
        if len(chosen) != 2:
            raise typer.BadParameter(f"give exactly two dimensions, got {dims}", param_hint="--dims")
        pair = (chosen[0], chosen[1])
    x, y, names = load_labelled(data, g.image_shape, g.manifest.labels)
    x, y = x[:limit], y[:limit]
    mu, _ = g.encode(x)
    title = f"{g.name}: {len(x):,} codes over the {g.prior.name} prior"
    if g.latent_dim > 2:
        title += f" (dimensions {pair[0]} and {pair[1]} of {g.latent_dim})"
    image = latent_map(mu, y, g.prior, names, dims=(int(pair[0]), int(pair[1])), title=title)
    save_image(output, image)
    _done(output, f"{len(x)} codes of {g.name}")


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
    typer.echo(f"{'NAME'.ljust(width)}  SOURCE   |v|    DESCRIPTION")
    for key, a in m.attributes.items():
        typer.echo(f"{key.ljust(width)}  {a.source:<7}  {float(np.linalg.norm(a.vector)):5.2f}  {a.description}")


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
    g = _load(model, providers, threads, device_id, tf32, cuda_graph)

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
    from .serve import Settings, check_installed, run

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
        g = _load(ref, providers, threads)
        loaded[g.name] = g
    typer.echo(f"serving {', '.join(loaded)} on http://{host}:{port}/ (API docs at /docs)", err=True)
    run(loaded, settings, log_level)


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
