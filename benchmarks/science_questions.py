"""The question set of benchmarks/answers.py: multi-part science questions, each part with the
capability it needs and, where it is a number, the value it must have.

Written from references, not from PRSM's output: conversion factors from NIST SP 811 (2008)
Appendix B, the SI defining constants (CODATA 2018), standard formulas as stated in Halliday,
Resnick & Walker (Fundamentals of Physics, 10th ed.) and IUPAC's Green Book, standard atomic
weights (IUPAC CIAAW 2021, abridged), areas and volumes of figures as in the CRC Standard
Mathematical Tables and Formulae. Each expected value is written as the arithmetic that gives
it, from those numbers.

A part is (capability, expected): expected is a number (the answer's value, within 1e-6
relative), a string (an exact symbolic answer, compared by SymPy as an expression), or None (a
general model's explanation: its capability and placement are scored, not its words).
`edges` are the dependencies between parts, (from, to), 0-based, that a good plan has.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# References
INCH, FOOT, MILE, YARD, NMI = 0.0254, 0.3048, 1609.344, 0.9144, 1852.0  # SP 811 B.8, exact
POUND, OUNCE = 0.45359237, 0.028349523125  # kg, exact
GALLON, LITER = 3.785411784e-3, 1e-3  # m^3, exact
ATM, BAR, PSI = 101325.0, 1e5, 6894.757293168  # Pa
CAL, KWH, EV = 4.184, 3.6e6, 1.602176634e-19  # J
H, C, KB, NA, E = 6.62607015e-34, 299792458.0, 1.380649e-23, 6.02214076e23, 1.602176634e-19
R = KB * NA  # molar gas constant, exact
G_N, GRAV = 6.6743e-11, 9.80665  # CODATA 2018 G; standard gravity (exact)
EPS0 = 8.8541878128e-12
M_E, M_P = 9.1093837139e-31, 1.67262192595e-27  # electron and proton masses, CODATA 2022
M_EARTH, R_EARTH = 5.9722e24, 6.3710e6  # kg (IAU 2015 nominal GM / G), m (IUGG mean radius)
AW = {
    "H": 1.008,
    "C": 12.011,
    "N": 14.007,
    "O": 15.999,
    "Na": 22.990,
    "Cl": 35.45,
    "S": 32.06,
    "Ca": 40.078,
    "K": 39.098,
}


def f2c(f: float) -> float:
    return (f - 32) / 1.8  # SP 811 4.2.1.1


def c2f(c: float) -> float:
    return 1.8 * c + 32


@dataclass(frozen=True)
class Question:
    text: str
    parts: tuple[tuple[str, object], ...]
    edges: tuple[tuple[int, int], ...] = field(default=())
    kind: str = ""  # the class of question, for the report


def q(kind: str, text: str, *parts: tuple[str, object], edges: tuple[tuple[int, int], ...] = ()) -> Question:
    return Question(text, parts, edges, kind)


U, M, F, G = "units", "math", "formula", "general"

QUESTIONS: list[Question] = [
    # --- unit conversions -----------------------------------------------------------------------
    q("units", "Convert 42 km to miles.", (U, 42000 / MILE)),
    q("units", "How many feet are in 3 meters?", (U, 3 / FOOT)),
    q("units", "Convert 5 miles to kilometers.", (U, 5 * MILE / 1000)),
    q("units", "What is 12 inches in centimeters?", (U, 12 * INCH * 100)),
    q("units", "Convert 150 pounds to kilograms.", (U, 150 * POUND)),
    q("units", "How many ounces are in 2 kilograms?", (U, 2 / OUNCE)),
    q("units", "Convert 3 gallons to liters.", (U, 3 * GALLON / LITER)),
    q("units", "Convert 2 atm to kPa.", (U, 2 * ATM / 1000)),
    q("units", "Convert 30 psi to bar.", (U, 30 * PSI / BAR)),
    q("units", "How many joules are in 250 calories?", (U, 250 * CAL)),
    q("units", "Convert 1.5 kWh to megajoules.", (U, 1.5 * KWH / 1e6)),
    q("units", "Convert 10 eV to joules.", (U, 10 * EV)),
    q("units", "How many seconds are in 3 hours?", (U, 3 * 3600)),
    q("units", "Convert 100 km/h to m/s.", (U, 100000 / 3600)),
    q("units", "Convert 60 mph to km/h.", (U, 60 * MILE / 1000)),
    q("units", "Convert 2 nautical miles to meters.", (U, 2 * NMI)),
    q("units", "Convert 500 yards to meters.", (U, 500 * YARD)),
    q("units", "Convert 50 degrees Fahrenheit to Celsius.", (U, f2c(50))),
    q("units", "Convert 100 °C to °F.", (U, c2f(100))),
    q("units", "What is 300 K in Celsius?", (U, 300 - 273.15)),
    q("units", "Convert -40 degrees Celsius to Fahrenheit.", (U, c2f(-40))),
    q("units", "Convert 98.6 °F to kelvin.", (U, f2c(98.6) + 273.15)),
    q("units", "Convert 0 K to degrees Fahrenheit.", (U, c2f(-273.15))),
    q("units", "Convert a temperature difference of 20 degC to degF.", (U, 20 * 1.8)),
    q("units", "What is the speed of light in km/s?", (U, C / 1000)),
    q(
        "units",
        "Convert 3 km to miles. Also convert 10 pounds to kilograms.",
        (U, 3000 / MILE),
        (U, 10 * POUND),
    ),
    q("units", "Convert 72 °F to Celsius and convert 20 °C to Fahrenheit.", (U, f2c(72)), (U, c2f(20))),
    q(
        "units",
        "Convert 5 miles to km, then convert that to feet.",
        (U, 5 * MILE / 1000),
        (U, 5 * MILE / FOOT),
        edges=((0, 1),),
    ),
    q(
        "units",
        "How many meters are in a mile? And how many inches are in a foot?",
        (U, MILE),
        (U, FOOT / INCH),
    ),
    q(
        "units",
        "1. Convert 2 liters to gallons. 2. Convert 1 atm to psi.",
        (U, 2 * LITER / GALLON),
        (U, ATM / PSI),
    ),
    # --- arithmetic in words ----------------------------------------------------------------------
    q("arithmetic", "What is 12% of 350?", (M, 0.12 * 350)),
    q("arithmetic", "What is 15 percent of 1,200?", (M, 0.15 * 1200)),
    q("arithmetic", "What is 7 times 8?", (M, 56)),
    q("arithmetic", "What is 144 divided by 12?", (M, 12)),
    q("arithmetic", "What is the square root of 169?", (M, 13)),
    q("arithmetic", "What is 3 squared plus 4 squared?", (M, 25)),
    q("arithmetic", "Calculate 2 to the power of 12.", (M, 4096)),
    q("arithmetic", "What is the sum of 123 and 456?", (M, 579)),
    q("arithmetic", "What is the product of 12 and 11?", (M, 132)),
    q("arithmetic", "What is the average of 4, 8 and 15?", (M, 9)),
    q("arithmetic", "Increase 200 by 15%.", (M, 230)),
    q("arithmetic", "Decrease 80 by 25%.", (M, 60)),
    q("arithmetic", "What percentage of 80 is 20?", (M, 25)),
    q("arithmetic", "What is 6 factorial?", (M, 720)),
    q("arithmetic", "What is log base 2 of 256?", (M, 8)),
    q("arithmetic", "Multiply 17 by 23.", (M, 391)),
    q("arithmetic", "Subtract 45 from 100.", (M, 55)),
    q("arithmetic", "What is 2 + 3*4?", (M, 14)),
    q("arithmetic", "What is (15 - 3) / 4?", (M, 3)),
    q("arithmetic", "What is 12% of 350? Also convert 4 miles to kilometers.", (M, 42), (U, 4 * MILE / 1000)),
    q("arithmetic", "What is 20% of 45, and what is 45 minus 9?", (M, 9), (M, 36)),
    q("arithmetic", "Compute 15% of 80, then add 7 to it.", (M, 12), (M, 19), edges=((0, 1),)),
    q("arithmetic", "What is 2+2, then square it.", (M, 4), (M, 16), edges=((0, 1),)),
    q(
        "arithmetic",
        "What is the cube root of 27? Then multiply the result by 5.",
        (M, 3),
        (M, 15),
        edges=((0, 1),),
    ),
    q("arithmetic", "Add 17 and 25. Then divide the result by 6.", (M, 42), (M, 7), edges=((0, 1),)),
    # --- algebra and calculus ---------------------------------------------------------------------
    q("calculus", "Solve 2x + 3 = 15 for x.", (M, "x = 6")),
    q("calculus", "Find x if 5x - 7 = 18.", (M, "x = 5")),
    q("calculus", "Solve x^2 - 5x + 6 = 0 for x.", (M, "x = 2, x = 3")),
    q("calculus", "Differentiate x^3 with respect to x.", (M, "3*x**2")),
    q("calculus", "What is the derivative of sin(x)?", (M, "cos(x)")),
    q("calculus", "Find the derivative of x^2 * e^x.", (M, "x**2*exp(x) + 2*x*exp(x)")),
    q("calculus", "What is the second derivative of x^4?", (M, "12*x**2")),
    q("calculus", "Integrate x^2 from 0 to 3.", (M, 9)),
    q("calculus", "What is the integral of sin(x) from 0 to pi?", (M, 2)),
    q("calculus", "Integrate 1/x from 1 to e.", (M, 1)),
    q("calculus", "What is the integral of 2x?", (M, "x**2")),
    q("calculus", "What is the limit of sin(x)/x as x approaches 0?", (M, 1)),
    q("calculus", "Simplify sin(x)^2 + cos(x)^2.", (M, "1")),
    q("calculus", "Factor x^2 - 9.", (M, "(x - 3)*(x + 3)")),
    q("calculus", "Expand (x + 2)^2.", (M, "x**2 + 4*x + 4")),
    q("calculus", "Evaluate x^3 - 2x at x = 3.", (M, 21)),
    q(
        "calculus",
        "Solve 2x + 3 = 15 for x, then multiply the result by 3.",
        (M, "x = 6"),
        (M, 18),
        edges=((0, 1),),
    ),
    q("calculus", "Solve 3x = 12 for x. Then multiply by 5.", (M, "x = 4"), (M, 20), edges=((0, 1),)),
    q(
        "calculus",
        "Differentiate x^3 sin(x) with respect to x, then evaluate that at x = 1.",
        (M, "x**3*cos(x) + 3*x**2*sin(x)"),
        (M, math.cos(1) + 3 * math.sin(1)),
        edges=((0, 1),),
    ),
    q(
        "calculus",
        "Find the derivative of x^3 and then evaluate it at x = 2.",
        (M, "3*x**2"),
        (M, 12),
        edges=((0, 1),),
    ),
    q("calculus", "Integrate x from 0 to 4. Also differentiate x^5.", (M, 8), (M, "5*x**4")),
    q("calculus", "Find the roots of x^2 - 7x + 12.", (M, "x = 3, x = 4")),
    q("calculus", "Solve x^2 = 49 for x.", (M, "x = -7, x = 7")),
    q("calculus", "Solve for x: 4x + 1 = 29. Then add 10 to it.", (M, "x = 7"), (M, 17), edges=((0, 1),)),
    q(
        "calculus",
        "Evaluate the integral of 3x^2 from 1 to 2, then subtract 1 from it.",
        (M, 7),
        (M, 6),
        edges=((0, 1),),
    ),
    # --- formulas: mechanics ------------------------------------------------------------------------
    q("formula", "What is the kinetic energy of a 2 kg mass moving at 3 m/s?", (F, 0.5 * 2 * 3**2)),
    q("formula", "What is the kinetic energy of a 1200 kg car moving at 25 m/s?", (F, 0.5 * 1200 * 25**2)),
    q("formula", "What is the momentum of a 0.145 kg baseball moving at 40 m/s?", (F, 0.145 * 40)),
    q("formula", "What force is needed to accelerate a 5 kg mass at 3 m/s^2?", (F, 15)),
    q("formula", "What is the weight of a 60 kg person?", (F, 60 * GRAV)),
    q(
        "formula",
        "What is the potential energy of a 3 kg mass raised to a height of 10 m?",
        (F, 3 * GRAV * 10),
    ),
    q("formula", "What is the work done by a force of 25 N over 4 m?", (F, 100)),
    q("formula", "What is the period of a pendulum 2 m long?", (F, 2 * math.pi * math.sqrt(2 / GRAV))),
    q(
        "formula",
        "How long does it take an object to fall from a height of 45 m?",
        (F, math.sqrt(2 * 45 / GRAV)),
    ),
    q(
        "formula",
        "What is the gravitational force between two 500 kg masses 2 m apart?",
        (F, G_N * 500 * 500 / 4),
    ),
    q("formula", "What is the density of a 3 kg object with a volume of 0.002 m^3?", (F, 1500)),
    q(
        "formula",
        "What is the centripetal acceleration of an object moving at 10 m/s in a circle of radius 5 m?",
        (F, 20),
    ),
    q(
        "formula",
        "What is the escape velocity from a body of mass 7.35e22 kg and radius 1.737e6 m?",
        (F, math.sqrt(2 * G_N * 7.35e22 / 1.737e6)),
    ),
    q(
        "formula",
        "A spring with a spring constant of 200 N/m is stretched by 0.1 m. What is the force?",
        (F, 20),
    ),
    q("formula", "What is the pressure exerted by a force of 50 N on an area of 0.25 m^2?", (F, 200)),
    # --- formulas: electricity, heat, waves, quantum --------------------------------------------
    q("formula", "What is the current through a 20 ohm resistor with a voltage of 10 V?", (F, 0.5)),
    q("formula", "What is the power of a device drawing a current of 3 A at a voltage of 230 V?", (F, 690)),
    q(
        "formula",
        "What is the force between two charges of 2 μC each 0.5 m apart?",
        (F, 2e-6 * 2e-6 / (4 * math.pi * EPS0 * 0.25)),
    ),
    q(
        "formula",
        "What is the energy stored in a capacitor of 10 μF charged to 100 V?",
        (F, 0.5 * 10e-6 * 100**2),
    ),
    q(
        "formula",
        "How much heat is needed to raise the temperature of 3 kg of water by 5 °C?",
        (F, 3 * 4184 * 5),
    ),
    q("formula", "How much heat is needed to warm 1 kg of water from 15 °C to 35 °C?", (F, 1 * 4184 * 20)),
    q(
        "formula",
        "What is the pressure of 1 mol of an ideal gas at 300 K in a volume of 0.0246 m^3?",
        (F, 1 * R * 300 / 0.0246),
    ),
    q(
        "formula",
        "What is the Carnot efficiency of an engine between a hot reservoir at 600 K and a cold reservoir at 300 K?",
        (F, 0.5),
    ),
    q("formula", "What is the peak wavelength of a black body at 3000 K?", (F, 2.897771955e-3 / 3000 * 1e9)),
    q("formula", "What is the speed of a wave with frequency 500 Hz and wavelength 0.68 m?", (F, 340)),
    q("formula", "What is the frequency of light with a wavelength of 500 nm?", (F, C / 500e-9)),
    q("formula", "What is the energy of a photon with a wavelength of 400 nm?", (F, H * C / 400e-9)),
    q(
        "formula",
        "What is the energy of a photon with a wavelength of 620 nm in eV?",
        (F, H * C / 620e-9 / EV),
    ),
    q("formula", "What is the energy of a photon with a frequency of 5e14 Hz?", (F, H * 5e14)),
    q("formula", "What is the rest energy of 2 g of mass?", (F, 2e-3 * C**2)),
    q(
        "formula",
        "What is the de Broglie wavelength of an electron moving at 2e6 m/s?",
        (F, H / (9.1093837015e-31 * 2e6) * 1e9),
    ),
    q("formula", "What is the energy of the n = 3 level of hydrogen?", (F, -13.605693122994 / 9)),
    q(
        "formula",
        "If 80 g of a substance has a half-life of 4 years, how much is left after 12 years?",
        (F, 10),
    ),
    # --- formulas: chemistry ----------------------------------------------------------------------
    q("formula", "What is the molar mass of CO2?", (F, AW["C"] + 2 * AW["O"])),
    q("formula", "What is the molar mass of H2SO4?", (F, 2 * AW["H"] + AW["S"] + 4 * AW["O"])),
    q("formula", "How many moles are in 18 g of water?", (F, 18 / (2 * AW["H"] + AW["O"]))),
    q("formula", "How many moles are in 117 g of NaCl?", (F, 117 / (AW["Na"] + AW["Cl"]))),
    q("formula", "How many molecules are in 3 mol of water?", (F, 3 * NA)),
    q("formula", "What is the molarity of 2 mol of NaCl dissolved in 4 L of solution?", (F, 0.5)),
    q("formula", "What is the pH of a 0.001 M HCl solution?", (F, 3)),
    q("formula", "What is the pH of a 0.01 M NaOH solution?", (F, 12)),
    q("formula", "What is the pH of a 1e-4 M HNO3 solution?", (F, 4)),
    q("formula", "How many moles are in 50 g of CaCO3?", (F, 50 / (AW["Ca"] + AW["C"] + 3 * AW["O"]))),
    # --- formulas joined to more parts --------------------------------------------------------------
    q(
        "formula",
        "What is the kinetic energy of a 4 kg mass moving at 5 m/s? Then convert that to kJ.",
        (F, 50),
        (U, 0.05),
        edges=((0, 1),),
    ),
    q(
        "formula",
        "What is the energy of a photon with a wavelength of 500 nm? Also convert 500 nm to meters.",
        (F, H * C / 500e-9),
        (U, 500e-9),
    ),
    q("formula", "What is the pH of a 0.01 M HCl solution, and what is 10% of 50?", (F, 2), (M, 5)),
    # --- calculations with explanations -----------------------------------------------------------
    q(
        "mixed",
        "Convert 3 km to miles and explain why the mile is longer.",
        (U, 3000 / MILE),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "Convert 100 °C to °F and explain why water boils at that temperature.",
        (U, 212),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "What is 12% of 350? Explain what a percentage is.", (M, 42), (G, None)),
    q(
        "mixed",
        "Solve x^2 - 4 = 0 for x. Using that, explain what a root is.",
        (M, "x = -2, x = 2"),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "Differentiate x^2 and explain what a derivative means.",
        (M, "2*x"),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "What is the kinetic energy of a 2 kg mass moving at 3 m/s? Why does it grow with the square of the speed?",
        (F, 9),
        (G, None),
    ),
    q(
        "mixed",
        "Integrate x^2 from 0 to 1 and explain what the integral represents.",
        (M, "1/3"),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "What is the pH of a 0.001 M HCl solution? What does pH measure?", (F, 3), (G, None)),
    q(
        "mixed",
        "Convert 5 kg to pounds. What is the difference between mass and weight?",
        (U, 5 / POUND),
        (G, None),
    ),
    q(
        "mixed",
        "What is the energy of a photon with a wavelength of 450 nm, and why does blue light carry more energy than red light?",
        (F, H * C / 450e-9),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "Convert 1 atm to Pa. Also, what is atmospheric pressure?", (U, ATM), (G, None)),
    q(
        "mixed",
        "What is 25% of 640 and explain how to compute a percentage.",
        (M, 160),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "Solve 3x + 2 = 11 for x, then explain how you isolate a variable.",
        (M, "x = 3"),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "In one sentence, what is entropy? Then convert 300 K to Celsius.", (G, None), (U, 26.85)),
    q("mixed", "What is photosynthesis? Convert 2 kg to grams.", (G, None), (U, 2000)),
    q("mixed", "Explain how rainbows form and why they are curved.", (G, None)),
    q("mixed", "What is the difference between speed and velocity?", (G, None)),
    q("mixed", "Why is the sky blue?", (G, None)),
    q(
        "mixed",
        "Define an isotope. Also, how many moles are in 36 g of water?",
        (G, None),
        (F, 36 / (2 * AW["H"] + AW["O"])),
    ),
    q(
        "mixed",
        "What is the momentum of a 2 kg mass moving at 4 m/s, and what is momentum conservation?",
        (F, 8),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "Convert 10 miles to km and compare a mile with a kilometer.",
        (U, 10 * MILE / 1000),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "What is the square root of 225? Describe what a square root is.", (M, 15), (G, None)),
    q(
        "mixed",
        "1. Integrate x^2 from 0 to 1 2) How many seconds are in 2 days? 3. Why is the integral a number?",
        (M, "1/3"),
        (U, 172800),
        (G, None),
    ),
    q(
        "mixed",
        "What is the weight of a 10 kg mass? Explain the difference between weight and mass.",
        (F, 10 * GRAV),
        (G, None),
    ),
    q(
        "mixed",
        "Convert 68 °F to Celsius, then explain what room temperature is.",
        (U, 20),
        (G, None),
        edges=((0, 1),),
    ),
    q("mixed", "Calculate 15% of 200 and also describe what a tip is.", (M, 30), (G, None)),
    q(
        "mixed",
        "What is the current through a 4 ohm resistor with a voltage of 12 V? What is Ohm's law?",
        (F, 3),
        (G, None),
    ),
    q(
        "mixed",
        "Find the derivative of x^3, then evaluate it at x = 2. Explain what the value means.",
        (M, "3*x**2"),
        (M, 12),
        (G, None),
        edges=((0, 1),),
    ),
    q(
        "mixed",
        "What is the frequency of light with a wavelength of 600 nm? Why do we see colors?",
        (F, C / 600e-9),
        (G, None),
    ),
    q(
        "mixed",
        "Convert 2 hours to seconds and explain what a second is.",
        (U, 7200),
        (G, None),
        edges=((0, 1),),
    ),
    # --- more phrasings ---------------------------------------------------------------------------
    q("units", "Express 2.5 hours in minutes.", (U, 150)),
    q("units", "How many kilometers is 26.2 miles?", (U, 26.2 * MILE / 1000)),
    q("units", "Change 5 feet into centimeters.", (U, 5 * FOOT * 100)),
    q("arithmetic", "What's 9 times 7?", (M, 63)),
    q("arithmetic", "Work out 18% of 250.", (M, 45)),
    q("arithmetic", "What is half of 98?", (M, 49)),
    q("arithmetic", "Divide 1000 by 8.", (M, 125)),
    q("arithmetic", "What is the difference between 500 and 123?", (M, 377)),
    q("calculus", "What is the derivative of ln(x) with respect to x?", (M, "1/x")),
    q("calculus", "Compute the integral of cos(x) from 0 to pi/2.", (M, 1)),
    q("formula", "How much energy does a 100 W bulb use in 5 hours in kWh?", (F, 0.5)),
    q("formula", "What is the momentum of a 70 kg runner moving at 8 m/s?", (F, 560)),
    q(
        "formula",
        "What is the kinetic energy of a 0.5 kg ball moving at 20 m/s? Also what is 20 squared?",
        (F, 100),
        (M, 400),
    ),
    # --- a second hand's wordings: a quantity the formula does not use, the question after its
    # data, givens in other units, plain numbers in geometry, number theory, degrees ----------
    q("formula", "A 2 kg object falls from a height of 10 m. What is its speed just before it hits the ground?",
      (F, math.sqrt(2 * GRAV * 10))),
    q("formula", "A stone is dropped from a cliff and hits the water 4 seconds later. How high is the cliff?",
      (F, GRAV * 4**2 / 2)),
    q("formula", "A car travels 150 miles in 2.5 hours; what is its average speed in km/h?", (F, 150 * MILE / 1000 / 2.5)),
    q("formula", "How far does a car travel in 3 hours at 60 km/h?", (F, 60 * 3)),
    q("formula", "What's the escape velocity from the surface of the Earth?", (F, math.sqrt(2 * G_N * M_EARTH / R_EARTH))),
    q("formula", "Determine the power used by a device drawing 2 A at 120 V.", (F, 2 * 120)),
    q("formula", "What's the power when 3 A flows through 10 ohms?", (F, 3**2 * 10)),
    q("formula", "How much of 100 g of a radioactive isotope remains after 3 half-lives?", (F, 100 / 2**3)),
    q("formula", "A 100 g sample decays to 25 g in 10 years. What is its half-life?", (F, 10 / 2)),
    q("formula", "What is the half-life of a substance if 25 g of a 100 g sample remain after 10 years?", (F, 10 / 2)),
    q("formula", "How many atoms are in 12 g of carbon?", (F, 12 / AW["C"] * NA)),
    q("formula", "What is the energy of an electron moving at 1e6 m/s?", (F, 0.5 * M_E * 1e6**2)),
    q("formula", "What is the acceleration of a 10 kg block pushed by a net force of 50 N?", (F, 50 / 10)),
    q("formula", "What is the pressure exerted by a 200 N force on an area of 0.5 m^2?", (F, 200 / 0.5)),
    q("formula", "A spring with a spring constant of 300 N/m is compressed 0.2 m. How much energy is stored?",
      (F, 300 * 0.2**2 / 2)),
    q("formula", "How fast must a 0.5 kg ball move to have 100 J of kinetic energy?", (F, math.sqrt(2 * 100 / 0.5))),
    q("formula", "A 1200 kg car goes around a curve of radius 50 m at 20 m/s. What is the centripetal force?",
      (F, 1200 * 20**2 / 50)),
    q("formula", "A gas at 300 K and 2 atm occupies 10 L. How many moles of gas are there?",
      (F, 2 * ATM * 10 * LITER / (R * 300))),
    q("formula", "What is the current through a 12 V battery connected to a 4 ohm resistor?", (F, 12 / 4)),
    q("geometry", "What is the area of a circle with a radius of 3 cm?", (F, math.pi * 3**2)),
    q("geometry", "What is the area of a circle whose diameter is 10 m?", (F, math.pi * 10**2 / 4)),
    q("geometry", "What is the circumference of a circle of radius 7 m?", (F, 2 * math.pi * 7)),
    q("geometry", "What is the volume of a sphere with a diameter of 10 cm?", (F, math.pi * 10**3 / 6)),
    q("geometry", "What is the surface area of a sphere with radius 2 m?", (F, 4 * math.pi * 2**2)),
    q("geometry", "What is the volume of a cylinder with radius 2 m and height 5 m?", (F, math.pi * 2**2 * 5)),
    q("geometry", "What is the volume of a cone with a radius of 3 cm and a height of 4 cm?", (F, math.pi * 3**2 * 4 / 3)),
    q("geometry", "A right triangle has legs of 3 cm and 4 cm. How long is the hypotenuse?", (F, math.hypot(3, 4))),
    q("geometry", "Find the hypotenuse of a right triangle with sides 5 and 12.", (F, math.hypot(5, 12))),
    q("geometry", "A triangle has a base of 10 and a height of 6. What is its area?", (F, 10 * 6 / 2)),
    q("arithmetic", "What is the greatest common divisor of 48 and 180?", (M, math.gcd(48, 180))),
    q("arithmetic", "What is the lowest common multiple of 8, 12 and 20?", (M, math.lcm(8, 12, 20))),
    q("arithmetic", "What is the remainder when 100 is divided by 7?", (M, 100 % 7)),
    q("arithmetic", "What is the sum of the first 100 positive integers?", (M, 100 * 101 // 2)),
    q("arithmetic", "Compute the sum of the integers from 1 to 1000.", (M, 1000 * 1001 // 2)),
    q("arithmetic", "What is the sine of 30 degrees?", (M, 0.5)),
    q("arithmetic", "What is the cosine of 60 degrees plus the sine of 30 degrees?", (M, 0.5 + 0.5)),
    q("arithmetic", "What is 5! divided by 3!?", (M, math.factorial(5) // math.factorial(3))),
    q("arithmetic", "How many ways can you choose 3 items from 10?", (M, math.comb(10, 3))),
    q("arithmetic", "What is the percentage increase from 50 to 75?", (M, 100 * (75 - 50) / 50)),
    q("arithmetic", "What is the median of 3, 1, 4, 1, 5?", (M, 3)),
    q("arithmetic", "What is the distance between the points (0, 0) and (3, 4)?", (M, math.hypot(3, 4))),
    q("arithmetic", "Round 3.14159 to 2 decimal places.", (M, 3.14)),
    q("formula", "How long does it take a car accelerating at 3 m/s^2 from rest to reach 30 m/s?", (F, 30 / 3)),
    q("formula", "A car accelerates from 10 m/s to 30 m/s in 5 s. What is its acceleration?", (F, (30 - 10) / 5)),
    q("formula", "A plane accelerates from rest at 4 m/s^2 over a 1800 m runway. How fast is it going at the end?",
      (F, math.sqrt(2 * 4 * 1800))),
    q("units", "Convert 5 feet 10 inches to centimeters.", (U, (5 * FOOT + 10 * INCH) * 100)),
    q("formula", "What is the wavelength of an electron with a kinetic energy of 100 eV?",
      (F, H / math.sqrt(2 * M_E * 100 * EV) * 1e9)),
    q("formula", "A current of 2 A flows for 10 seconds. How much charge passes?", (F, 2 * 10)),
    q("formula", "A 0.5 kg ball is thrown upward at 20 m/s. How high does it go?", (F, 20**2 / (2 * GRAV))),
    q("formula", "What is the total resistance of a 4 ohm and a 6 ohm resistor in series?", (F, 4 + 6)),
    q("formula", "What is the total resistance of a 4 ohm and a 6 ohm resistor in parallel?", (F, 1 / (1 / 4 + 1 / 6))),
    q("formula", "What is the concentration of a solution made by dissolving 58.44 g of NaCl in 1 L of water?",
      (F, 58.44 / (AW["Na"] + AW["Cl"]) / 1)),
    q("formula", "A 500 W microwave runs for 3 minutes. How much energy does it use in kJ?", (F, 500 * 3 * 60 / 1000)),
    q("arithmetic", "Calculate 3.5 × 10^4 divided by 7 × 10^2.", (M, 3.5e4 / 7e2)),
    q("arithmetic", "If f(x) = x^2 + 3x, what is f(2)?", (M, 2**2 + 3 * 2)),
    q("units", "What temperature in Fahrenheit is 37 degrees Celsius?", (U, c2f(37))),
    q("formula", "How much heat is needed to melt 2 kg of ice at 0 °C?", (F, 2 * 333e3)),  # HRW Table 18-4
    q("formula", "What is the kinetic energy of an electron accelerated through 100 V?", (F, 100)),  # in eV
    q("formula", "A wave has a period of 0.02 s. What is its frequency?", (F, 1 / 0.02)),
    q("formula", "What is the frequency of a pendulum 0.5 m long?", (F, math.sqrt(GRAV / 0.5) / (2 * math.pi))),
    q("formula", "A 70 kg skier slides down a 30 m high slope from rest. What is her speed at the bottom, ignoring friction?",
      (F, math.sqrt(2 * GRAV * 30))),
    q("formula", "What is the power needed to lift a 50 kg mass 10 m in 5 s?", (F, 50 * GRAV * 10 / 5)),
    q("formula", "What is the volume of 2 mol of an ideal gas at STP?", (F, 2 * R * 273.15 / ATM)),
    q("formula", "What is the wavelength of a 100 MHz radio wave?", (F, C / 100e6)),
    q("formula", "What is the pOH of a solution with a pH of 3?", (F, 14 - 3)),
    q("formula", "How many electrons make up a charge of 1 C?", (F, 1 / E)),
    q("formula", "What is the kinetic energy of a proton moving at 1e7 m/s?", (F, 0.5 * M_P * 1e7**2)),
    q("formula", "What is the energy in kWh used by a 2 kW heater running for 90 minutes?", (F, 2 * 1.5)),
    q("formula", "How many grams of NaCl are needed to make 0.5 L of a 0.2 M solution?",
      (F, 0.2 * 0.5 * (AW["Na"] + AW["Cl"]))),
    q("formula", "What is the efficiency of an engine that does 200 J of work from 500 J of heat?", (F, 200 / 500)),
    q("formula", "Light passes from air into glass with a refractive index of 1.5 at an angle of incidence of 30 degrees. "
      "What is the angle of refraction?", (F, math.degrees(math.asin(math.sin(math.radians(30)) / 1.5)))),
    q("formula", "An object is 30 cm from a lens with a focal length of 10 cm. Where is the image?",
      (F, 1 / (1 / 10 - 1 / 30))),
    q("formula", "What is the magnification of a lens if the image distance is 15 cm and the object distance is 30 cm?",
      (F, -15 / 30)),
    q("formula", "What is the orbital speed of a satellite 7000 km from the center of the Earth?",
      (F, math.sqrt(G_N * M_EARTH / 7e6))),
    q("formula", "A 1500 kg car moving at 20 m/s brakes to a stop in 4 s. What is the average braking force?",
      (F, 1500 * 20 / 4)),
    q("mixed", "What is the kinetic energy of a 1000 kg car traveling at 25 m/s, and why does it grow with the square of speed?",
      (F, 0.5 * 1000 * 25**2), (G, None), edges=((0, 1),)),
]  # fmt: skip


def capabilities_of(question: Question) -> list[str]:
    return [cap for cap, _ in question.parts]
