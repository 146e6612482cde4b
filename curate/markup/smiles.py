"""SMILES syntax: checking a string is well-formed SMILES (OpenSMILES grammar) and whether it is
isomeric. A syntax check, not chemistry: valences and aromaticity are not verified (that needs a
toolkit such as RDKit), but every string that passes is tokenizable as SMILES and balanced.
"""

from __future__ import annotations

import re

# One SMILES token (the tokenization of Schwaller et al. 2019, Molecular Transformer).
TOKEN = re.compile(
    r"(\[[^\[\]]+\]|Br|Cl|N|O|S|P|F|I|B|C|b|c|n|o|s|p|\*|\(|\)|\.|=|#|-|\+|\\|/|:|~|@|\?|>|\$|%[0-9]{2}|[0-9])"
)
# A bracket atom: [isotope? symbol chirality? hcount? charge? class?] (OpenSMILES 3.1).
BRACKET_ATOM = re.compile(
    r"\[(\d{1,3})?(\*|[A-Z][a-z]?|se|as|te|[bcnops])(@@|@(?:TH|AL|SP|TB|OH)?\d{0,2})?(H\d?)?"
    r"(\+{1,3}|-{1,3}|[+-]\d{1,2})?(:\d{1,4})?\]"
)
ORGANIC_ATOMS = frozenset({"B", "C", "N", "O", "P", "S", "F", "Cl", "Br", "I", "b", "c", "n", "o", "p", "s", "*"})
BONDS = frozenset("-=#$:/\\~.")
ELEMENTS = frozenset(
    "H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se Br Kr "
    "Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy Ho Er Tm Yb "
    "Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es Fm Md No Lr Rf "
    "Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og".split()
)


def tokens(smiles: str) -> list[str] | None:
    """The SMILES tokens of `smiles`, or None if some character is not part of any token."""
    found = TOKEN.findall(smiles)
    return found if sum(map(len, found)) == len(smiles) else None


def atom_count(parts: list[str]) -> int:
    return sum(1 for t in parts if t in ORGANIC_ATOMS or t.startswith("["))


def check_molecule(smiles: str) -> str | None:
    """None if `smiles` (one molecule, no '>') is well-formed, else the reason it is not."""
    parts = tokens(smiles)
    if parts is None:
        return "characters outside SMILES"
    depth, previous = 0, None
    rings: set[str] = set()
    for token in parts:
        if token.startswith("["):
            match = BRACKET_ATOM.fullmatch(token)
            if match is None:
                return f"malformed bracket atom {token}"
            symbol = match.group(2)
            if symbol not in ELEMENTS and symbol not in ("*", "se", "as", "te", "b", "c", "n", "o", "p", "s"):
                return f"unknown element in {token}"
        elif token == "(":
            if previous is None or previous in ("(", ".") or previous in BONDS:
                return "branch without an atom before it"
            depth += 1
        elif token == ")":
            if previous == "(" or previous in BONDS or depth == 0:
                return "empty or unbalanced branch"
            depth -= 1
        elif token[0].isdigit() or token[0] == "%":
            if previous is None or previous in ("(", "."):
                return "ring bond without an atom"
            rings ^= {token.lstrip("%")}
        elif token in BONDS:
            if previous is None or previous in BONDS or previous == "(" and token == ".":
                return f"bond '{token}' without an atom before it"
        elif token in ("@", "?", ">", "+"):
            return f"'{token}' outside a bracket atom"
        previous = token
    if depth:
        return "unbalanced branch"
    if rings:
        return f"unclosed ring bond {sorted(rings)[0]}"
    if previous in BONDS:
        return "ends with a bond"
    if atom_count(parts) == 0:
        return "no atom"
    return None


def check(smiles: str) -> str | None:
    """None if `smiles` (a molecule or a reaction `reactants>agents>products`) is well-formed."""
    if not smiles:
        return "empty"
    if ">" not in smiles:
        return check_molecule(smiles)
    sides = smiles.split(">")
    if len(sides) != 3 or not sides[0] or not sides[2]:
        return "a reaction needs reactants>agents>products"
    for side in sides:
        if side and (reason := check_molecule(side)):
            return reason
    return None


def is_isomeric(smiles: str) -> bool:
    """Whether SMILES carries stereochemistry or isotopes (Galactica's [START_I_SMILES])."""
    if "@" in smiles or "/" in smiles or "\\" in smiles:
        return True
    return any((match := BRACKET_ATOM.fullmatch(t)) and match.group(1) for t in re.findall(r"\[[^\]]+\]", smiles))
