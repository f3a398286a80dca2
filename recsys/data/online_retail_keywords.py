"""Keyword tables of the UCI Online Retail mapping (:mod:`recsys.data.online_retail`).

What the tables decide: which lines are services rather than products
(:data:`SERVICE_DESCRIPTIONS`), a customer's region from the country
(:data:`COUNTRY_REGION`), a product's retail category from its description
(:data:`CATEGORY_RULES`, :func:`categorize_description`), the closest
configured category (:data:`RETAIL_TO_SPEC_CATEGORY`) and a product's peak
season (:data:`SEASON_KEYWORDS`, :func:`peak_season`). Keywords match whole
words or whole phrases of the upper-cased description.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = [
    "CATEGORY_RULES",
    "COUNTRY_REGION",
    "RETAIL_CATEGORIES",
    "RETAIL_TO_SPEC_CATEGORY",
    "SEASON_KEYWORDS",
    "SERVICE_DESCRIPTIONS",
    "categorize_description",
    "peak_season",
]

SERVICE_DESCRIPTIONS: frozenset[str] = frozenset({
    "NEXT DAY CARRIAGE", "PACKING CHARGE", "POSTAGE", "DOTCOM POSTAGE", "CARRIAGE", "MANUAL", "BANK CHARGES",
    "AMAZON FEE", "DISCOUNT", "SAMPLES", "ADJUST BAD DEBT", "CRUK COMMISSION",
})
"""Descriptions (upper case, stripped) of service lines: removed with the
non-product codes even when the stock code looks like a product's."""

_EU = (
    "United Kingdom", "EIRE", "Ireland", "Channel Islands", "Germany", "France", "Spain", "Netherlands", "Belgium",
    "Switzerland", "Portugal", "Norway", "Italy", "Finland", "Cyprus", "Sweden", "Austria", "Denmark", "Poland",
    "Iceland", "Greece", "Malta", "European Community", "Lithuania", "Czech Republic", "Luxembourg",
)
_NA = ("USA", "United States", "Canada")
_ASIA = (
    "Japan", "Hong Kong", "Singapore", "Israel", "Lebanon", "Bahrain", "Saudi Arabia", "United Arab Emirates",
    "China", "Korea", "Thailand",
)
_OTHER = ("Australia", "RSA", "Brazil", "Unspecified")

COUNTRY_REGION: Mapping[str, str] = {
    **{c: "EU" for c in _EU},
    **{c: "NA" for c in _NA},
    **{c: "Asia" for c in _ASIA},
    **{c: "Other" for c in _OTHER},
}
"""Country -> region. EU is geographic Europe (with the UK, the Channel
Islands, EFTA states, Cyprus and the data's "European Community"); NA is the
USA and Canada; Asia is geographic Asia including the Middle East; Other is
Australia, South Africa (RSA), Brazil and "Unspecified". A country not listed
maps to "Other" and is counted in the data set's ``meta``."""

CATEGORY_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Seasonal", ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "SNOWMAN", "NATIVITY", "BAUBLE",
                  "EASTER", "HALLOWEEN", "VALENTINE", "BLACKCHRISTMAS", "GINGERBREAD")),
    ("Bath & Beauty", ("SOAP", "BATH", "BATHROOM", "LIP GLOSS", "NAIL", "MAKE UP", "COSMETIC", "SPONGE", "PERFUME",
                       "LAVENDER SCENT", "HAND CREAM", "TISSUES", "PLASTERS", "HOT WATER BOTTLE", "WASHBAG",
                       "FLANNEL", "FRAGRANCE", "OILS", "TOILETRY", "SHOWER CAP", "MIRROR COMPACT")),
    ("Jewellery & Accessories", ("NECKLACE", "NECKL", "BRACELET", "EARRINGS", "RING", "CHARM", "DIAMANTE",
                                 "BROOCH", "HAIR", "BEADS", "BEAD", "PURSE", "WALLET", "UMBRELLA", "SCARF",
                                 "GLOVES", "HAT", "SUNGLASSES", "BANGLE", "PENDANT", "JEWEL", "KEY RING",
                                 "KEYRING", "KEYRINGS", "BADGE", "BADGES", "SLIDE", "SLIDES", "CLIP",
                                 "CLIPS", "EAR MUFF", "HEADPHONES", "EARRING", "GLASSES CASE", "SOCK")),
    ("Bags", ("BAG", "BAGS", "HANDBAG", "SHOPPER", "TOTE", "BACKPACK", "RUCKSACK")),
    ("Travel", ("PASSPORT", "LUGGAGE", "TRAVEL")),
    ("Candles & Lighting", ("CANDLE", "CANDLES", "LIGHT", "LIGHTS", "T-LIGHT", "LANTERN", "LAMP", "INCENSE",
                            "NIGHTLIGHT", "TEALIGHT", "OIL BURNER", "CANDLEHOLDER", "LAMPSHADE", "BULB",
                            "MATCHES", "TORCH")),
    ("Kitchen & Dining", ("MUG", "MUGS", "CUP", "CUPS", "SAUCER", "BOWL", "BOWLS", "PLATE", "PLATES", "CUTLERY",
                          "TEA", "COFFEE", "CAKE", "CAKES", "CAKESTAND", "BAKING", "LUNCH", "JAR", "JARS", "TRAY",
                          "PANTRY", "KITCHEN", "APRON", "TOWEL", "NAPKINS", "DISH", "BOTTLE", "JAM", "SPOON",
                          "SPOONS", "CHOPSTICKS", "TEAPOT", "JUG", "BEAKER", "PAN", "COASTER", "COASTERS",
                          "PLACEMATS", "RECIPE", "GLASS", "TUMBLER", "FOOD", "SNACK", "EGG CUP", "BREAD", "MOULD",
                          "CASES", "TRAYS", "TIN", "TINS", "CANISTER", "GRINDER", "CAKE STAND", "NAPKIN",
                          "SUGAR", "TONGS", "BISCUIT", "CUTTERS", "CUTTER", "PLACE SETTINGS", "EGG COSY", "DOILY",
                          "DOILIES", "CHOPPING", "FORK", "KNIFE", "WHISK", "SIEVE", "CONTAINER", "CADDY", "BUTTER",
                          "GOBLET", "WINE", "PLACEMAT", "SALT", "PEPPER", "POPSICLES", "ICE LOLLY", "CORER")),
    ("Stationery & Cards", ("CARD", "CARDS", "PAPER", "NOTEBOOK", "NOTEBOOKS", "PEN", "PENS", "PENCIL", "PENCILS",
                            "WRAP", "STICKER", "STICKERS", "TAPE", "RIBBON", "RIBBONS", "ENVELOPE", "ENVELOPES",
                            "CALENDAR", "BOOK", "BOOKS", "ERASER", "RUBBER", "NOTE", "NOTEPAD", "DIARY", "JOURNAL",
                            "STAMP", "STAMPS", "CRAYONS", "CHALK", "SHARPENER", "RULER", "GIFT TAG", "TAGS",
                            "POSTCARD", "POSTCARDS", "MEMO", "ORGANISER", "STATIONERY", "SCISSOR", "SCISSORS",
                            "HOLE PUNCH", "CLIPBOARD", "FOLDER", "FILE", "BOOKMARK", "WRAPPING", "MEMOBOARD",
                            "SKETCHBOOK", "STENCIL")),
    ("Toys & Games", ("TOY", "TOYS", "JIGSAW", "GAME", "GAMES", "DOLL", "DOLLS", "PUZZLE", "PLAYING", "SPACEBOY",
                      "SKIPPING", "DOMINOES", "SOLDIER", "SOLDIERS", "TEDDY", "BALLOON", "BALLOONS", "KIDS",
                      "CHILDRENS", "CHILDS", "DOLLY", "SPINNING TOP", "YO-YO", "MARBLES", "PAINTING SET",
                      "COLOURING", "KNITTING", "SEWING", "CRAFT", "KIT", "FELTCRAFT", "MAGIC", "LUDO", "CLAY",
                      "INFLATABLE", "HELICOPTER", "PAINT", "PATCHES", "ANIMAL", "ANIMALS", "FARM", "SPORTING",
                      "SNAKES", "LADDERS", "SKITTLES", "RACING", "WINDMILL", "SPADE", "KITE", "BINGO",
                      "NAUGHTS", "PUPPET", "CREEPY CRAWLIES", "KNITTED", "EGG HUNT")),
    ("Garden", ("GARDEN", "PLANT", "PLANTER", "WATERING", "BIRD", "BIRDHOUSE", "FEEDER", "PARASOL", "DOORMAT",
                "GNOME", "FLOWER POT", "SEED", "SEEDS", "TRELLIS", "HERB", "HERBS", "OUTDOOR", "PICNIC",
                "WICKER", "TOADSTOOL", "TOADSTOOLS", "FLY SWAT", "KNEELING", "HAMMOCK", "CHIME", "CAMPING",
                "SPIRIT LEVEL")),
    ("Party", ("PARTY", "BIRTHDAY", "BUNTING", "CONFETTI", "PINATA", "STRAWS", "HONEYCOMB", "FLAG", "SOMBRERO",
               "FANCY DRESS", "MASK", "CRACKERS", "TOAST ITS")),
    ("Home Decor", ("FRAME", "FRAMES", "MIRROR", "CLOCK", "SIGN", "CUSHION", "DECORATION", "DECORATIONS",
                    "HANGING", "HEART", "HEARTS", "DOORSTOP", "HOOK", "HOOKS", "DRAWER", "CABINET", "STORAGE",
                    "BOX", "BOXES", "BASKET", "TILE", "WALL", "ORNAMENT", "VASE", "GARLAND", "WREATH", "DOOR",
                    "KNOB", "CHEST", "SHELF", "RACK", "HOLDER", "STAND", "PLAQUE", "THROW", "QUILT", "BLANKET",
                    "CURTAIN", "ART", "PICTURE", "PHOTO", "DOORKNOB", "TRINKET", "CHANDELIER", "MAGNET",
                    "MAGNETS", "BELL", "BELLS", "BUTTERFLY", "HOTTIE", "WARMER", "LETTER", "LETTERS", "NUMBER",
                    "BOTTLES", "FAN", "MOBILE", "PAPERWEIGHT", "CHALKBOARD", "BLACKBOARD", "FLOWER", "FLOWERS",
                    "STOOL", "CHAIR", "TABLE", "MAT", "FEATHER", "FILLER PAD", "COVER", "SCENTED", "POT",
                    "POTS", "PEG", "PEGS", "WOODEN", "METAL", "ZINC", "ENAMEL", "CERAMIC", "DECO", "TIDY",
                    "CRATES", "BASE")),
)
"""Description -> retail category: the first rule with a keyword in the
description wins (keywords match whole words or whole phrases, case
insensitive); no match -> ``"Other"``. Order matters: a "CHRISTMAS LIGHT" is
Seasonal, a "LUNCH BAG" is a bag, a "T-LIGHT HOLDER" is lighting. Home Decor
comes last and also catches generic materials (wooden, metal, zinc, ceramic,
enamel): in a giftware shop an otherwise unnamed object is a decoration."""

RETAIL_CATEGORIES: tuple[str, ...] = tuple(name for name, _ in CATEGORY_RULES) + ("Other",)

RETAIL_TO_SPEC_CATEGORY: Mapping[str, str] = {
    "Seasonal": "Home & Garden",
    "Bath & Beauty": "Beauty",
    "Jewellery & Accessories": "Fashion",
    "Bags": "Fashion",
    "Travel": "Travel",
    "Candles & Lighting": "Home & Garden",
    "Kitchen & Dining": "Home & Garden",
    "Stationery & Cards": "Books",
    "Toys & Games": "Gaming",
    "Party": "Home & Garden",
    "Garden": "Home & Garden",
    "Home Decor": "Home & Garden",
    "Other": "Home & Garden",
}
"""Retail category -> the closest of the ten configured categories, so that
config-based priors apply (``category_scheme="spec"``). The retailer sells
giftware and homeware: most products land in Home & Garden; Electronics,
Sports, Automotive and Health have no products."""

SEASON_KEYWORDS: Mapping[str, tuple[str, ...]] = {
    "winter": ("CHRISTMAS", "XMAS", "ADVENT", "SANTA", "REINDEER", "SNOWFLAKE", "SNOWMAN", "NATIVITY", "BAUBLE",
               "HOT WATER BOTTLE", "HAND WARMER", "VALENTINE"),
    "spring": ("EASTER", "BUNNY", "CHICK", "CHICKS", "SPRING"),
    "summer": ("SUMMER", "BEACH", "PICNIC", "PARASOL", "SUNGLASSES", "SEASIDE"),
    "autumn": ("HALLOWEEN", "PUMPKIN", "AUTUMN"),
}
"""Description keywords that mark a product's peak season (checked in this
order; no keyword -> ``"none"``)."""

def _keyword_regex(keywords: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = sorted({re.escape(k) for k in keywords}, key=len, reverse=True)
    return re.compile(r"(?<![A-Z0-9])(" + "|".join(alternatives) + r")(?![A-Z0-9])")


_CATEGORY_REGEX = tuple((name, _keyword_regex(words)) for name, words in CATEGORY_RULES)
_SEASON_REGEX = tuple((season, _keyword_regex(words)) for season, words in SEASON_KEYWORDS.items())


def categorize_description(description: object) -> tuple[str, tuple[str, ...]]:
    """The retail category of one description and the keywords that decided it
    (``("Other", ())`` when no rule matches or the description is missing)."""
    if not isinstance(description, str):
        return "Other", ()
    text = description.upper()
    for name, regex in _CATEGORY_REGEX:
        found = regex.findall(text)
        if found:
            return name, tuple(dict.fromkeys(k.lower() for k in found))
    return "Other", ()


def peak_season(description: object) -> str:
    """The peak season a description names (:data:`SEASON_KEYWORDS`, first match) or ``"none"``."""
    if not isinstance(description, str):
        return "none"
    text = description.upper()
    for season, regex in _SEASON_REGEX:
        if regex.search(text):
            return season
    return "none"
