"""The label space of the product: actors and stances, in one place."""

ACTORS: tuple[str, ...] = ("japan", "china", "us", "taiwan", "other")
STANCES: tuple[str, ...] = ("supportive", "hostile", "hedging", "neutral")

# Natural-language names fed to the model as the first segment of the pair, so the
# encoder reads "United States" rather than an opaque id.
ACTOR_NAMES: dict[str, str] = {
    "japan": "Japan",
    "china": "China",
    "us": "United States",
    "taiwan": "Taiwan",
    "other": "another party",
}

ID2LABEL: dict[int, str] = dict(enumerate(STANCES))
LABEL2ID: dict[str, int] = {label: i for i, label in ID2LABEL.items()}
