"""The fixed ingredients of the synthetic world: personas and the product vocabulary.

A :class:`Persona` is a hidden customer type. It shifts the observable
features of its users (age, region, spending tier, price sensitivity), their
activity level and event mix, and their category preferences. The generator
(:mod:`recsys.data.synthetic`) mixes each persona's tastes with the SPEC
tables (region and age-group categories) and with per-user noise, so the
personas are recoverable from behaviour only approximately.

:data:`CATALOGUE` gives each category its sub-types (each with a peak season
and a price multiplier), brands, materials and features; product names,
descriptions and tags are composed from it, so TF-IDF separates categories
and, within a category, sub-types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["CATALOGUE", "CATEGORY_MEDIAN_PRICE", "CategoryVocabulary", "PERSONAS", "Persona", "Subtype"]


@dataclass(frozen=True)
class Persona:
    """A hidden customer type.

    ``categories`` are relative weights (the remaining categories get a small
    floor); ``region_tilt`` multiplies the uniform region distribution;
    ``tier_probs`` are budget/mid/premium probabilities; the ``*_rate``
    fields are the funnel base rates of an average-affinity product view
    (favorite, add-to-cart, purchase given cart, review given purchase).
    """

    name: str
    weight: float
    age_mean: float
    age_sd: float
    tier_probs: tuple[float, float, float]
    price_sensitivity: float
    sessions_per_month: float
    views_per_session: float
    favorite_rate: float
    cart_rate: float
    purchase_rate: float
    review_rate: float
    categories: Mapping[str, float]
    region_tilt: Mapping[str, float] = field(default_factory=dict)


PERSONAS: tuple[Persona, ...] = (
    Persona("young gamer", 0.15, 21, 4, (0.55, 0.37, 0.08), 0.78, 3.2, 4.5, 0.030, 0.060, 0.18, 0.12,
            {"Gaming": 0.45, "Electronics": 0.30, "Sports": 0.10, "Fashion": 0.05}, {"NA": 1.4, "Asia": 1.3}),
    Persona("bargain fashion", 0.15, 27, 6, (0.65, 0.30, 0.05), 0.85, 2.6, 5.0, 0.054, 0.072, 0.15, 0.18,
            {"Fashion": 0.45, "Beauty": 0.25, "Sports": 0.08, "Home & Garden": 0.05}, {"Asia": 1.5, "Other": 1.2}),
    Persona("home & garden family", 0.14, 38, 7, (0.30, 0.55, 0.15), 0.60, 1.8, 3.5, 0.036, 0.078, 0.24, 0.27,
            {"Home & Garden": 0.40, "Automotive": 0.15, "Health": 0.15, "Books": 0.10}, {"EU": 1.3, "NA": 1.2}),
    Persona("senior reader", 0.11, 66, 8, (0.35, 0.50, 0.15), 0.40, 1.2, 3.0, 0.030, 0.072, 0.30, 0.52,
            {"Books": 0.50, "Health": 0.22, "Home & Garden": 0.10, "Travel": 0.10}, {"EU": 1.5}),
    Persona("premium tech", 0.12, 39, 9, (0.08, 0.35, 0.57), 0.35, 2.2, 3.5, 0.036, 0.084, 0.27, 0.30,
            {"Electronics": 0.50, "Automotive": 0.15, "Gaming": 0.10, "Travel": 0.10}, {"NA": 1.4, "EU": 1.2}),
    Persona("traveller", 0.10, 33, 9, (0.20, 0.50, 0.30), 0.50, 1.5, 4.0, 0.060, 0.054, 0.21, 0.33,
            {"Travel": 0.45, "Fashion": 0.15, "Books": 0.10, "Electronics": 0.10}, {"EU": 1.4, "Other": 1.2}),
    Persona("sporty", 0.12, 29, 7, (0.35, 0.50, 0.15), 0.60, 2.0, 3.5, 0.036, 0.072, 0.23, 0.22,
            {"Sports": 0.45, "Health": 0.20, "Fashion": 0.10, "Automotive": 0.05}, {"NA": 1.3, "Other": 1.2}),
    Persona("beauty & health", 0.11, 46, 12, (0.30, 0.50, 0.20), 0.55, 1.7, 3.5, 0.048, 0.072, 0.24, 0.38,
            {"Beauty": 0.35, "Health": 0.30, "Fashion": 0.10, "Home & Garden": 0.10}, {"Asia": 1.3, "EU": 1.1}),
)
"""The eight default personas (SPEC asks for 8 behavioural segments)."""


@dataclass(frozen=True)
class Subtype:
    """A product sub-type: its noun, the season it peaks in ('none' if
    none), and a price multiplier on the category median."""

    noun: str
    peak_season: str
    price_factor: float


@dataclass(frozen=True)
class CategoryVocabulary:
    subtypes: tuple[Subtype, ...]
    brands: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    pitch: tuple[str, ...]


def _s(*items: tuple[str, str, float]) -> tuple[Subtype, ...]:
    return tuple(Subtype(*item) for item in items)


CATEGORY_MEDIAN_PRICE: Mapping[str, float] = {
    "Electronics": 180.0, "Books": 16.0, "Home & Garden": 55.0, "Fashion": 45.0, "Travel": 320.0,
    "Sports": 60.0, "Automotive": 75.0, "Gaming": 55.0, "Beauty": 24.0, "Health": 28.0,
}
"""Median list price per category (prices are log-normal around it)."""

CATALOGUE: Mapping[str, CategoryVocabulary] = {
    "Electronics": CategoryVocabulary(
        _s(("headphones", "none", 0.6), ("laptop", "autumn", 4.5), ("smartphone", "none", 3.5),
           ("tablet", "winter", 2.2), ("smartwatch", "spring", 1.4), ("camera", "summer", 3.0),
           ("bluetooth speaker", "summer", 0.5), ("charger", "none", 0.15)),
        ("Voltra", "Nexon", "Kairo", "Lumetec", "Sonique", "Pixelon"),
        ("aluminium", "polycarbonate", "glass", "carbon fibre"),
        ("noise cancelling", "fast charging", "OLED display", "wireless", "long battery life", "4K resolution",
         "USB-C", "Wi-Fi 6", "water resistant", "AI assistant"),
        ("Smart connectivity for everyday work and play.", "Crisp sound and sharp picture in a slim chassis.",
         "Powerful processor and reliable battery."),
    ),
    "Books": CategoryVocabulary(
        _s(("novel", "summer", 1.0), ("cookbook", "winter", 1.6), ("biography", "none", 1.3),
           ("thriller", "summer", 0.9), ("children's book", "autumn", 0.8), ("textbook", "autumn", 3.5),
           ("poetry collection", "spring", 0.9), ("travel guide", "spring", 1.4)),
        ("Penwright Press", "Inkwell House", "Folio Lane", "Quillmark", "Harbor Books", "Cedar Leaf"),
        ("hardcover", "paperback", "illustrated edition", "large print"),
        ("bestselling author", "award winning", "gripping plot", "annotated", "first edition", "chapters",
         "literary fiction", "historical", "recipes", "reading guide"),
        ("A story readers cannot put down.", "Pages full of insight from a celebrated writer.",
         "The perfect read for long evenings."),
    ),
    "Home & Garden": CategoryVocabulary(
        _s(("sofa cushion", "autumn", 0.5), ("garden hose", "spring", 0.7), ("lawn mower", "spring", 5.0),
           ("cookware set", "winter", 2.0), ("bed linen", "none", 1.2), ("patio chair", "summer", 1.8),
           ("table lamp", "winter", 0.9), ("plant pot", "spring", 0.4)),
        ("Hearthly", "Verdantia", "Oakden", "Nestwell", "Gardenia Co", "Homestead"),
        ("oak wood", "ceramic", "stainless steel", "linen", "terracotta", "rattan"),
        ("weatherproof", "easy assembly", "non-stick", "dishwasher safe", "eco friendly", "cordless",
         "energy saving", "handcrafted", "foldable", "frost resistant"),
        ("Brings comfort and style to your home.", "Built for the garden, season after season.",
         "Practical design for family living."),
    ),
    "Fashion": CategoryVocabulary(
        _s(("winter coat", "winter", 2.8), ("summer dress", "summer", 1.0), ("sneakers", "none", 1.6),
           ("jeans", "none", 1.1), ("leather handbag", "none", 2.5), ("swimwear", "summer", 0.7),
           ("wool scarf", "winter", 0.5), ("t-shirt", "summer", 0.4)),
        ("Maison Lyra", "Urbanthread", "Velour & Co", "Stitchwell", "Nordhem", "Aurelle"),
        ("cotton", "wool", "leather", "denim", "silk", "recycled polyester"),
        ("slim fit", "breathable", "handmade", "limited collection", "casual", "elegant", "oversized",
         "water repellent", "stretch", "vintage look"),
        ("Timeless style for every occasion.", "Comfortable fabric with a modern cut.",
         "Trend-setting design from the new collection."),
    ),
    "Travel": CategoryVocabulary(
        _s(("city break package", "spring", 1.0), ("beach holiday", "summer", 2.5), ("ski trip", "winter", 2.2),
           ("suitcase", "summer", 0.5), ("travel backpack", "summer", 0.3), ("cruise", "summer", 4.0),
           ("rail pass", "autumn", 0.8), ("travel insurance", "none", 0.2)),
        ("Wanderly", "Jetstream Tours", "Globetrek", "Compass Voyages", "Skyroute", "Harbourline"),
        ("hard shell", "ripstop nylon", "all inclusive", "half board"),
        ("flights included", "guided tour", "hotel breakfast", "flexible cancellation", "sea view",
         "airport transfer", "carry-on size", "TSA lock", "family friendly", "weekend getaway"),
        ("Explore new destinations in comfort.", "Unforgettable days away from home.",
         "Everything you need for the journey."),
    ),
    "Sports": CategoryVocabulary(
        _s(("running shoes", "spring", 1.6), ("yoga mat", "none", 0.5), ("bicycle", "summer", 8.0),
           ("tennis racket", "summer", 1.5), ("ski goggles", "winter", 1.2), ("dumbbell set", "winter", 1.3),
           ("football", "autumn", 0.4), ("swim goggles", "summer", 0.3)),
        ("Strideon", "Peakform", "Velocis", "Kinetix", "Summitpro", "Arenaflex"),
        ("mesh", "neoprene", "graphite", "rubber", "aluminium alloy"),
        ("lightweight", "shock absorbing", "anti-slip", "professional grade", "adjustable", "ergonomic grip",
         "training", "outdoor", "indoor", "competition"),
        ("Train harder and recover faster.", "Gear trusted by athletes.", "Made for performance outdoors."),
    ),
    "Automotive": CategoryVocabulary(
        _s(("car battery", "winter", 1.6), ("winter tyres", "winter", 3.5), ("dash cam", "none", 1.2),
           ("car vacuum", "spring", 0.6), ("roof box", "summer", 3.0), ("motor oil", "none", 0.5),
           ("seat cover", "none", 0.7), ("wiper blades", "autumn", 0.3)),
        ("Torqline", "Motorix", "Roadcraft", "Drivewell", "Autonova", "Gearhead"),
        ("synthetic", "rubber compound", "steel", "ABS plastic"),
        ("universal fit", "all weather", "easy installation", "12V", "heavy duty", "fuel saving",
         "night vision", "OEM quality", "long life", "anti-corrosion"),
        ("Keeps your vehicle running smoothly.", "Reliable parts for every road.",
         "Upgrade your drive with confidence."),
    ),
    "Gaming": CategoryVocabulary(
        _s(("game console", "winter", 8.0), ("controller", "winter", 1.1), ("gaming headset", "none", 1.5),
           ("mechanical keyboard", "none", 2.0), ("RPG game", "autumn", 1.0), ("shooter game", "winter", 1.0),
           ("gaming chair", "none", 4.0), ("VR headset", "winter", 7.0)),
        ("Pixelforge", "Nebula Play", "Raidcore", "Questra", "Bitstorm", "Arcadia Labs"),
        ("RGB backlit", "matte plastic", "memory foam", "braided cable"),
        ("multiplayer", "open world", "low latency", "144Hz", "surround sound", "co-op", "story mode",
         "esports", "haptic feedback", "cross-platform"),
        ("Level up your play.", "Immersive worlds and fast action.", "Built for competitive gamers."),
    ),
    "Beauty": CategoryVocabulary(
        _s(("moisturiser", "winter", 1.2), ("sunscreen", "summer", 0.8), ("lipstick", "none", 0.9),
           ("perfume", "winter", 2.8), ("hair dryer", "none", 2.5), ("face mask", "none", 0.6),
           ("nail polish", "spring", 0.5), ("shampoo", "none", 0.5)),
        ("Lumiere", "Velvetine", "Purebloom", "Glowra", "Silkessence", "Rosalie"),
        ("hyaluronic acid", "shea butter", "argan oil", "vitamin C", "aloe vera"),
        ("hydrating", "SPF 50", "fragrance free", "vegan", "dermatologist tested", "long lasting",
         "matte finish", "anti-ageing", "sensitive skin", "cruelty free"),
        ("Radiant skin every day.", "Luxurious care for face and body.", "A beauty routine you will love."),
    ),
    "Health": CategoryVocabulary(
        _s(("multivitamin", "winter", 0.8), ("protein powder", "spring", 1.4), ("blood pressure monitor", "none", 2.5),
           ("first aid kit", "summer", 0.9), ("massage gun", "none", 3.5), ("thermometer", "winter", 0.7),
           ("herbal tea", "autumn", 0.3), ("fitness tracker", "spring", 2.8)),
        ("Vitalis", "Curamed", "Wellspring", "Nutrava", "Healix", "Puracare"),
        ("plant based", "gluten free", "medical grade", "organic"),
        ("immune support", "clinically proven", "sugar free", "digital", "rechargeable", "daily dose",
         "recovery", "sleep aid", "heart health", "joint care"),
        ("Support your wellbeing naturally.", "Trusted health care at home.", "Feel better every day."),
    ),
}
"""Vocabulary per default category. A category added to the configuration
without an entry here gets a generic vocabulary built from its name."""


def vocabulary_for(category: str) -> CategoryVocabulary:
    """The vocabulary of ``category`` (a generic one for unknown categories)."""
    if category in CATALOGUE:
        return CATALOGUE[category]
    slug = category.lower()
    return CategoryVocabulary(
        _s((f"{slug} item", "none", 1.0), (f"{slug} set", "none", 1.8), (f"{slug} accessory", "none", 0.4)),
        tuple(f"{category.title().replace(' ', '')}{suffix}" for suffix in ("ia", "ex", "ora", "line")),
        ("standard", "premium"),
        (f"{slug} essential", f"classic {slug}", f"modern {slug}", f"compact {slug}"),
        (f"Quality {slug} for every need.",),
    )
