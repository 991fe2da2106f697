"""Which time zone names a program file may use: a place's IANA zone or UTC, never a fixed offset or a legacy alias.

``zoneinfo`` accepts every name tzdata ships, including ``EST`` (a fixed UTC-5 with no
daylight saving: members in New York would get their checklist an hour late all summer) and
the aliases tzdata keeps only for backward compatibility. ``zone_problem`` names the zone to
write instead. The renamed aliases below are tzdata's ``backward`` links that are not in its
``zone.tab``, each pointing to the current zone of the same place; tzdata links a few to
another country's identical zone (Iceland to Africa/Abidjan), and those point to the
country's own zone instead. tests/nudges/test_zones.py checks the table against the installed
tzdata, so a new legacy name fails a test rather than slipping through.
"""

from __future__ import annotations

import re

__all__ = ["zone_problem"]

_SEE = "see docs/program.md#time-zones"

_RENAMED_PAIRS = """
Africa/Asmera=Africa/Asmara Africa/Timbuktu=Africa/Bamako America/Argentina/ComodRivadavia=America/Argentina/Catamarca
America/Atka=America/Adak America/Buenos_Aires=America/Argentina/Buenos_Aires America/Catamarca=America/Argentina/Catamarca
America/Coral_Harbour=America/Atikokan America/Cordoba=America/Argentina/Cordoba America/Ensenada=America/Tijuana
America/Fort_Wayne=America/Indiana/Indianapolis America/Godthab=America/Nuuk America/Indianapolis=America/Indiana/Indianapolis
America/Jujuy=America/Argentina/Jujuy America/Knox_IN=America/Indiana/Knox America/Louisville=America/Kentucky/Louisville
America/Mendoza=America/Argentina/Mendoza America/Montreal=America/Toronto America/Nipigon=America/Toronto
America/Pangnirtung=America/Iqaluit America/Porto_Acre=America/Rio_Branco America/Rainy_River=America/Winnipeg
America/Rosario=America/Argentina/Cordoba America/Santa_Isabel=America/Tijuana America/Shiprock=America/Denver
America/Thunder_Bay=America/Toronto America/Virgin=America/St_Thomas America/Yellowknife=America/Edmonton
Antarctica/South_Pole=Antarctica/McMurdo Asia/Ashkhabad=Asia/Ashgabat Asia/Calcutta=Asia/Kolkata
Asia/Choibalsan=Asia/Ulaanbaatar Asia/Chongqing=Asia/Shanghai Asia/Chungking=Asia/Shanghai Asia/Dacca=Asia/Dhaka
Asia/Harbin=Asia/Shanghai Asia/Istanbul=Europe/Istanbul Asia/Kashgar=Asia/Urumqi Asia/Katmandu=Asia/Kathmandu
Asia/Macao=Asia/Macau Asia/Rangoon=Asia/Yangon Asia/Saigon=Asia/Ho_Chi_Minh Asia/Tel_Aviv=Asia/Jerusalem
Asia/Thimbu=Asia/Thimphu Asia/Ujung_Pandang=Asia/Makassar Asia/Ulan_Bator=Asia/Ulaanbaatar Atlantic/Faeroe=Atlantic/Faroe
Atlantic/Jan_Mayen=Arctic/Longyearbyen Australia/ACT=Australia/Sydney Australia/Canberra=Australia/Sydney
Australia/Currie=Australia/Hobart Australia/LHI=Australia/Lord_Howe Australia/NSW=Australia/Sydney
Australia/North=Australia/Darwin Australia/Queensland=Australia/Brisbane Australia/South=Australia/Adelaide
Australia/Tasmania=Australia/Hobart Australia/Victoria=Australia/Melbourne Australia/West=Australia/Perth
Australia/Yancowinna=Australia/Broken_Hill Brazil/Acre=America/Rio_Branco Brazil/DeNoronha=America/Noronha
Brazil/East=America/Sao_Paulo Brazil/West=America/Manaus Canada/Atlantic=America/Halifax Canada/Central=America/Winnipeg
Canada/Eastern=America/Toronto Canada/Mountain=America/Edmonton Canada/Newfoundland=America/St_Johns
Canada/Pacific=America/Vancouver Canada/Saskatchewan=America/Regina Canada/Yukon=America/Whitehorse
Chile/Continental=America/Santiago Chile/EasterIsland=Pacific/Easter Cuba=America/Havana Egypt=Africa/Cairo Eire=Europe/Dublin
Europe/Belfast=Europe/London Europe/Kiev=Europe/Kyiv Europe/Nicosia=Asia/Nicosia Europe/Tiraspol=Europe/Chisinau
Europe/Uzhgorod=Europe/Kyiv Europe/Zaporozhye=Europe/Kyiv GB=Europe/London GB-Eire=Europe/London Hongkong=Asia/Hong_Kong
Iceland=Atlantic/Reykjavik Iran=Asia/Tehran Israel=Asia/Jerusalem Jamaica=America/Jamaica Japan=Asia/Tokyo
Kwajalein=Pacific/Kwajalein Libya=Africa/Tripoli Mexico/BajaNorte=America/Tijuana Mexico/BajaSur=America/Mazatlan
Mexico/General=America/Mexico_City NZ=Pacific/Auckland NZ-CHAT=Pacific/Chatham Navajo=America/Denver PRC=Asia/Shanghai
Pacific/Enderbury=Pacific/Kanton Pacific/Johnston=Pacific/Honolulu Pacific/Ponape=Pacific/Pohnpei
Pacific/Samoa=Pacific/Pago_Pago Pacific/Truk=Pacific/Chuuk Pacific/Yap=Pacific/Chuuk Poland=Europe/Warsaw Portugal=Europe/Lisbon
ROC=Asia/Taipei ROK=Asia/Seoul Singapore=Asia/Singapore Turkey=Europe/Istanbul US/Alaska=America/Anchorage
US/Aleutian=America/Adak US/Arizona=America/Phoenix US/Central=America/Chicago US/East-Indiana=America/Indiana/Indianapolis
US/Eastern=America/New_York US/Hawaii=Pacific/Honolulu US/Indiana-Starke=America/Indiana/Knox US/Michigan=America/Detroit
US/Mountain=America/Denver US/Pacific=America/Los_Angeles US/Samoa=Pacific/Pago_Pago W-SU=Europe/Moscow
"""
_RENAMED: dict[str, str] = dict(pair.split("=") for pair in _RENAMED_PAIRS.split())

# The names that are an offset or a rule rather than a place, with the zone their users most
# likely mean; tzdata's own links for these (EST to America/Panama) keep the offset, not the intent.
_NOT_A_PLACE: dict[str, str] = {
    "EST": "a fixed UTC-5 zone without daylight saving; use America/New_York (or America/Panama for no DST)",
    "MST": "a fixed UTC-7 zone without daylight saving; use America/Denver (or America/Phoenix for no DST)",
    "HST": "a fixed UTC-10 zone; use Pacific/Honolulu",
    "EST5EDT": "a legacy rule-based zone (US rules in every year); use America/New_York",
    "CST6CDT": "a legacy rule-based zone (US rules in every year); use America/Chicago",
    "MST7MDT": "a legacy rule-based zone (US rules in every year); use America/Denver (or America/Phoenix for no DST)",
    "PST8PDT": "a legacy rule-based zone (US rules in every year); use America/Los_Angeles",
    "CET": "a legacy rule-based zone; use the zone of the members' city, such as Europe/Paris or Europe/Berlin",
    "MET": "a legacy rule-based zone; use the zone of the members' city, such as Europe/Paris or Europe/Berlin",
    "EET": "a legacy rule-based zone; use the zone of the members' city, such as Europe/Athens or Europe/Helsinki",
    "WET": "a legacy rule-based zone; use the zone of the members' city, such as Europe/Lisbon",
    "Factory": "not a time zone; use the zone of the members' city, such as Europe/Lisbon",
    "localtime": "the server's own zone, not a place; use the zone of the members' city, such as Europe/Lisbon",
}
_GMT = "a fixed UTC+0 zone; use UTC, or Europe/London for British time with summer time"
_UTC = "another name for UTC; write UTC"
for _name in ("GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Etc/GMT", "Etc/GMT0", "Etc/GMT+0", "Etc/GMT-0", "Etc/Greenwich"):
    _NOT_A_PLACE[_name] = _GMT
for _name in ("UCT", "Universal", "Zulu", "Etc/UCT", "Etc/Universal", "Etc/Zulu"):
    _NOT_A_PLACE[_name] = _UTC

_ETC_OFFSET = re.compile(r"Etc/GMT([+-])(\d{1,2})")
_OFFSET = re.compile(r"(?:UTC|GMT)?\s*[+-]\s*\d{1,2}(?::?\d{2})?", re.IGNORECASE)


def zone_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a member's or channel's zone, and what to write instead;
    None for a place's IANA zone or UTC. Names zoneinfo does not know are left to zoneinfo."""
    if name in _RENAMED:
        return f"{name!r} is a legacy name; use {_RENAMED[name]} ({_SEE})"
    if name in _NOT_A_PLACE:
        return f"{name!r} is {_NOT_A_PLACE[name]} ({_SEE})"
    if match := _ETC_OFFSET.fullmatch(name):
        # POSIX style: Etc/GMT+5 is five hours behind UTC.
        offset = ("-" if match[1] == "+" else "+") + match[2]
        return (
            f"{name!r} is a fixed UTC{offset} zone without daylight saving (Etc/GMT names invert the sign); "
            f"use the zone of the members' city, an Area/City name ({_SEE})"
        )
    if _OFFSET.fullmatch(name):
        return f"{name!r} is a UTC offset, not a time zone; use the zone of the members' city, such as Europe/Lisbon ({_SEE})"
    return None
