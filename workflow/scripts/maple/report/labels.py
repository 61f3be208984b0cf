"""Point labels that never overlap: each label goes to the first of a fixed list of places around its point (eight
directions on rings of growing distance) whose box, as the renderer draws it, meets no label placed before it.
Deterministic (same figure, same places) and free of hand-tuned offsets: coinciding points fan their labels out
around the shared point, a label set away from its point gets a thin leader line.

The boxes are display extents, so the figure's layout must be final first: `label_points` draws the figure once
(constrained layout settles the axes) and then holds that layout while it places the labels."""

from __future__ import annotations

from itertools import product

from matplotlib.text import Text

DIRECTIONS = ((1, 1), (-1, 1), (1, -1), (-1, -1), (1, 0), (-1, 0), (0, 1), (0, -1))
STEP_POINTS = 4.0  # distance between the rings of candidate places, in points
MAX_RINGS = 60
LEADER = {"arrowstyle": "-", "color": "grey", "linewidth": 0.4, "shrinkA": 0, "shrinkB": 2}


def _alignment(dx: int, dy: int) -> dict:
    """Text alignment that makes a label grow away from its point in direction (dx, dy)."""
    return {
        "ha": {1: "left", -1: "right", 0: "center"}[dx],
        "va": {1: "bottom", -1: "top", 0: "center"}[dy],
    }


def candidate_offsets(max_rings: int = MAX_RINGS):
    """(ring, dx, dy, offset in points) in the order they are tried: the nearest ring first, every direction."""
    for ring, (dx, dy) in product(range(1, max_rings + 1), DIRECTIONS):
        scale = ring * STEP_POINTS / (2**0.5 if dx and dy else 1.0)
        yield ring, dx, dy, (dx * scale, dy * scale)


def _fits(box, placed, inside) -> bool:
    if any(box.overlaps(other) for other in placed):
        return False
    return inside is None or (
        box.x0 >= inside.x0 and box.x1 <= inside.x1 and box.y0 >= inside.y0 and box.y1 <= inside.y1
    )


def text_box(annotation, renderer):
    """The box of a label's text alone (an Annotation's own extent takes in its leader line too), where the label
    now is (update_positions: the text's place from its point and offset, as drawing sets it)."""
    annotation.update_positions(renderer)
    return Text.get_window_extent(annotation, renderer)


def place_labels(ax, points, texts, renderer, placed=None, fontsize: float = 6) -> list:
    """Annotate each (x, y) of points (data coordinates) with its text where its box meets no other label's (the
    boxes in `placed`, extended as labels are placed); within the axes where there is room, else beside them.
    Returns the annotations."""
    placed = [] if placed is None else placed
    frame = ax.get_window_extent(renderer)
    annotations = []
    for (x, y), text in zip(points, texts):
        chosen = None
        for inside in (frame, None):  # within the axes where there is room, else anywhere free
            for ring, dx, dy, offset in candidate_offsets():
                annotation = ax.annotate(
                    text,
                    (x, y),
                    xytext=offset,
                    textcoords="offset points",
                    fontsize=fontsize,
                    annotation_clip=False,
                    arrowprops=LEADER if ring > 1 else None,
                    **_alignment(dx, dy),
                )
                box = text_box(annotation, renderer)
                if _fits(box, placed, inside):
                    chosen = annotation
                    break
                annotation.remove()
            if chosen is not None:
                break
        if chosen is None:  # MAX_RINGS rings around the point are full: only with absurd label counts
            raise RuntimeError(f"no free place for the label {text!r}")
        placed.append(box)
        annotations.append(chosen)
    return annotations


def label_points(fig, panels) -> list:
    """Labels for the points of several panels of fig, none overlapping another (panels: (ax, points, texts) each).
    Settles the figure's layout first and keeps it, so that the boxes measured are the boxes drawn."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")
    renderer = fig.canvas.get_renderer()
    placed: list = []
    return [a for ax, points, texts in panels for a in place_labels(ax, points, texts, renderer, placed)]
