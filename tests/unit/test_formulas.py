"""The formula tool: the table holds what the issue asks, each formula solves for each of its
variables, and worked questions give the values computed by hand from the formula and the SI
constants (CODATA 2018 exact h, c, k, N_A, e; G = 6.6743e-11; g = 9.80665 m/s^2)."""

from __future__ import annotations

import math

import pytest

from prsm.backends.formula_tool import _solved, answer_formula
from prsm.backends.formulas import formulas, looks_like_formula
from prsm.backends.units_tool import registry
from prsm.errors import ModelCallFailed

H, C, NA, R = 6.62607015e-34, 299792458.0, 6.02214076e23, 8.314462618
EV = 1.602176634e-19


def test_the_table_has_forty_formulas_across_the_sciences():
    table = formulas()
    assert len(table) >= 40
    assert len({f.id for f in table}) == len(table)
    text = " ".join(f"{f.id} {f.name}" for f in table).lower()
    for area in ("kinetic", "ohm", "ideal gas", "photon", "de broglie", "ph", "moles", "wave", "carnot"):
        assert area in text, area


@pytest.mark.parametrize("formula", formulas(), ids=lambda f: f.id)
def test_every_formula_solves_for_each_of_its_variables(formula):
    for name, variable in formula.variables.items():
        registry().Unit(variable.unit) if variable.unit != "dimensionless" else None
        assert _solved(formula.id, name), f"{formula.id} cannot be solved for {name}"
    for constant in formula.constants.values():
        registry().Quantity(1, constant)  # a constant Pint knows
    assert formula.source and formula.words


WORKED = [  # (question, unknown, value, unit as printed), values by hand
    ("What is the kinetic energy of a 2 kg mass moving at 3 m/s?", "K", 9.0, "joule"),
    ("What is the kinetic energy of a 1000 kg car moving at 72 km/h in kJ?", "K", 200.0, "kilojoule"),
    ("What is the energy of a photon with a wavelength of 500 nm?", "E", H * C / 500e-9, "joule"),
    ("What is the energy of a photon with a wavelength of 500 nm in eV?", "E", H * C / 500e-9 / EV, "electron_volt"),
    ("What wavelength of light has photons with an energy of 2 eV?", "l_w", H * C / (2 * EV) * 1e9, "nanometer"),
    ("What is the frequency of light with a wavelength of 600 nm?", "f", C / 600e-9, "hertz"),
    ("What is the pressure of 2 mol of an ideal gas at 300 K in a volume of 0.05 m^3?", "p", 2 * R * 300 / 0.05, "pascal"),
    ("What is the temperature of 1 mol of an ideal gas at 101325 Pa in 0.0224 m^3?", "T", 101325 * 0.0224 / R, "kelvin"),
    ("What is the momentum of a 1500 kg car moving at 20 m/s?", "p", 30000.0, "kilogram * meter / second"),
    ("What force is needed to accelerate a 10 kg mass at 2 m/s^2?", "F", 20.0, "newton"),
    ("What is the weight of a 70 kg person?", "W", 70 * 9.80665, "newton"),
    ("What is the work done by a force of 10 N over 5 m?", "W", 50.0, "joule"),
    ("How much heat is needed to raise the temperature of 2 kg of water by 10 °C?", "Q", 2 * 4184 * 10.0, "joule"),
    ("How much heat is needed to warm 0.5 kg of water from 20 °C to 80 °C?", "Q", 0.5 * 4184 * 60.0, "joule"),
    ("What is the period of a pendulum 1 m long?", "T", 2 * math.pi * math.sqrt(1 / 9.80665), "second"),
    ("How long does it take an object to fall from a height of 20 m?", "t", math.sqrt(40 / 9.80665), "second"),
    ("What is the gravitational force between two 1000 kg masses 10 m apart?", "F", 6.6743e-11 * 1e6 / 100, "newton"),
    ("What is the force between two charges of 1 μC each 0.1 m apart?", "F", 8.9875517862e9 * 1e-12 / 0.01, "newton"),
    ("What is the escape velocity from a body of mass 5.97e24 kg and radius 6.371e6 m?", "v",
     math.sqrt(2 * 6.6743e-11 * 5.97e24 / 6.371e6), "meter / second"),
    ("What is the current through a 10 ohm resistor with a voltage of 5 V?", "I", 0.5, "ampere"),
    ("What is the power of a device with current 2 A at a voltage of 12 V?", "P", 24.0, "watt"),
    ("How much energy does a 60 W bulb use in 2 hours in kWh?", "E", 0.12, "kilowatt_hour"),
    ("What is the rest energy of 1 g of mass?", "E", 1e-3 * C**2, "joule"),
    ("What is the de Broglie wavelength of an electron moving at 1e6 m/s?", "l_w",
     H / (9.1093837139e-31 * 1e6) * 1e9, "nanometer"),
    ("What is the energy of the n = 2 level of hydrogen?", "E", -13.605693122990 / 4, "electron_volt"),
    ("What is the Carnot efficiency of an engine between a hot reservoir at 500 K and a cold reservoir at 300 K?",
     "eta", 0.4, None),
    ("What is the peak wavelength of a black body at 5800 K?", "l_m", 2.897771955e-3 / 5800 * 1e9, "nanometer"),
    ("What is the density of a 2 kg object with a volume of 0.001 m^3?", "rho", 2000.0, "kilogram / meter ** 3"),
    ("What is the speed of a wave with frequency 440 Hz and wavelength 0.78 m?", "v", 343.2, "meter / second"),
    ("If 100 g of a substance has a half-life of 5 years, how much is left after 10 years?", "N", 25.0, "gram"),
    ("What is the pH of a 0.01 M HCl solution?", "pH", 2.0, None),
    ("What is the pH of a 0.001 M NaOH solution?", "pH", 11.0, None),
    ("How many moles are in 36 g of water?", "n", 36 / (2 * 1.008 + 15.999), "mole"),
    ("How many moles are in 10 g of NaCl?", "n", 10 / (22.990 + 35.45), "mole"),
    ("How many molecules are in 2 mol of water?", "N", 2 * NA, None),
    ("What is the molarity of 0.5 mol of NaCl dissolved in 2 L of solution?", "C", 0.25, "mole / liter"),
    ("What is the molar mass of H2SO4?", "M", 2 * 1.008 + 32.06 + 4 * 15.999, "gram / mole"),
    # held-out wordings: an unused mass, a question after its data, givens in other units
    ("A 2 kg object falls from a height of 10 m. What is its speed just before it hits the ground?", "v",
     math.sqrt(2 * 9.80665 * 10), "meter / second"),
    ("A stone is dropped from a cliff and hits the water 4 seconds later. How high is the cliff?", "d",
     9.80665 * 16 / 2, "meter"),
    ("A car travels 150 miles in 2.5 hours; what is its average speed in km/h?", "v", 150 * 1.609344 / 2.5,
     "kilometer / hour"),
    ("How far does a car travel in 3 hours at 60 km/h?", "d", 180.0, "kilometer"),
    ("What's the escape velocity from the surface of the Earth?", "v", math.sqrt(2 * 6.6743e-11 * 5.9722e24 / 6.371e6),
     "meter / second"),
    ("Determine the power used by a device drawing 2 A at 120 V.", "P", 240.0, "watt"),
    ("What's the power when 3 A flows through 10 ohms?", "P", 90.0, "watt"),  # not V = I*R
    ("What is the energy of an electron moving at 1e6 m/s?", "K", 0.5 * 9.1093837139e-31 * 1e12, "joule"),
    ("How much of 100 g of a radioactive isotope remains after 3 half-lives?", "N", 12.5, "gram"),
    ("What is the half-life of a substance if 25 g of a 100 g sample remain after 10 years?", "T_h", 5.0, "year"),
    ("A 100 g sample decays to 25 g in 10 years. What is its half-life?", "T_h", 5.0, "year"),
    ("How many atoms are in 12 g of carbon?", "N", 12 / 12.011 * NA, None),
    ("What is the area of a circle with a radius of 3 cm?", "A", math.pi * 9, "centimeter ** 2"),
    ("What is the area of a circle whose diameter is 10 m?", "A", math.pi * 25, "meter ** 2"),
    ("What is the volume of a sphere with a diameter of 10 cm?", "V", math.pi * 1000 / 6, "centimeter ** 3"),
    ("What is the volume of a cylinder with radius 2 m and height 5 m?", "V", math.pi * 20, "meter ** 3"),
    ("A right triangle has legs of 3 cm and 4 cm. How long is the hypotenuse?", "c", 5.0, "centimeter"),
    ("Find the hypotenuse of a right triangle with sides 5 and 12.", "c", 13.0, None),  # plain numbers
    ("A triangle has a base of 10 and a height of 6. What is its area?", "A", 30.0, None),
    ("How long does it take a car accelerating at 3 m/s^2 from rest to reach 30 m/s?", "t", 10.0, "second"),
    ("A car accelerates from 10 m/s to 30 m/s in 5 s. What is its acceleration?", "a", (30 - 10) / 5,
     "meter / second ** 2"),
    ("A plane accelerates from rest at 4 m/s^2 over a 1800 m runway. How fast is it going at the end?", "v",
     math.sqrt(2 * 4 * 1800), "meter / second"),
    ("A 0.5 kg ball is thrown upward at 20 m/s. How high does it go?", "h", 20**2 / (2 * 9.80665), "meter"),
    ("A current of 2 A flows for 10 seconds. How much charge passes?", "Q", 20.0, "coulomb"),
    ("What is the total resistance of a 4 ohm and a 6 ohm resistor in series?", "R", 10.0, "ohm"),
    ("What is the total resistance of a 4 ohm and a 6 ohm resistor in parallel?", "R", 1 / (1 / 4 + 1 / 6), "ohm"),
    ("What is the wavelength of an electron with a kinetic energy of 100 eV?", "l_w",
     H / math.sqrt(2 * 9.1093837139e-31 * 100 * EV) * 1e9, "nanometer"),
    # the solute is the compound a mass is given of, not the water it is dissolved in
    ("What is the concentration of a solution made by dissolving 58.44 g of NaCl in 1 L of water?", "C",
     58.44 / (22.990 + 35.45), "mole / liter"),
    ("What is the molarity of 10 g of sodium chloride dissolved in water to make 0.5 L?", "C",
     10 / (22.990 + 35.45) / 0.5, "mole / liter"),
    ("How much work is done lifting a 20 kg box 1.5 m?", "U", 20 * 9.80665 * 1.5, "joule"),
    ("How much energy does it take to boil 1 kg of water at 100 °C?", "Q", 2256e3, "joule"),  # HRW Table 18-4
    ("How much heat is needed to melt 2 kg of ice at 0 °C?", "Q", 2 * 333e3, "joule"),
    ("What is the kinetic energy of an electron accelerated through 100 V?", "K", 100.0, "electron_volt"),
    ("What is the momentum of a photon with a wavelength of 500 nm?", "p", H / 500e-9, "kilogram * meter / second"),
    ("A wave has a period of 0.02 s. What is its frequency?", "f", 50.0, "hertz"),
    ("What is the frequency of a pendulum 0.5 m long?", "f", math.sqrt(9.80665 / 0.5) / (2 * math.pi), "hertz"),
    ("A 70 kg skier slides down a 30 m high slope from rest. What is her speed at the bottom, ignoring friction?",
     "v", math.sqrt(2 * 9.80665 * 30), "meter / second"),
    ("What is the power needed to lift a 50 kg mass 10 m in 5 s?", "P", 50 * 9.80665 * 10 / 5, "watt"),
    ("What is the volume of 2 mol of an ideal gas at STP?", "V", 2 * R * 273.15 / 101325, "meter ** 3"),
    ("What is the wavelength of a 100 MHz radio wave?", "l_w", C / 100e6, "meter"),
    ("What is the pOH of a solution with a pH of 3?", "pOH", 11.0, None),
    ("How many grams of NaCl are needed to make 0.5 L of a 0.2 M solution?", "m", 0.2 * 0.5 * (22.990 + 35.45),
     "gram"),
    ("What is the efficiency of an engine that does 200 J of work from 500 J of heat?", "eta", 0.4, None),
    ("Light passes from air into glass with a refractive index of 1.5 at an angle of incidence of 30 degrees. "
     "What is the angle of refraction?", "t_2", math.degrees(math.asin(math.sin(math.radians(30)) / 1.5)), "degree"),
    ("An object is 30 cm from a lens with a focal length of 10 cm. Where is the image?", "d_i", 15.0, "centimeter"),
    ("What is the magnification of a lens if the image distance is 15 cm and the object distance is 30 cm?", "M",
     -0.5, None),  # asks for the magnification, not the image distance the condition names
    ("What is the acceleration due to gravity on the surface of a planet with mass 6.4e23 kg and radius 3.4e6 m?",
     "a", 6.6743e-11 * 6.4e23 / 3.4e6**2, "meter / second ** 2"),
    ("What is the orbital speed of a satellite 7000 km from the center of the Earth?", "v",
     math.sqrt(6.6743e-11 * 5.9722e24 / 7e6), "meter / second"),
    ("A 1500 kg car moving at 20 m/s brakes to a stop in 4 s. What is the average braking force?", "F",
     1500 * 20 / 4, "newton"),
    ("How much does a 50 kg person weigh in newtons?", "W", 50 * 9.80665, "newton"),
    ("How many electrons make up a charge of 1 C?", "N", 1 / 1.602176634e-19, None),
    ("What is the kinetic energy of a proton moving at 1e7 m/s?", "K", 0.5 * 1.67262192595e-27 * 1e14, "joule"),
    ("What is the de Broglie wavelength of a neutron moving at 2000 m/s?", "l_w",
     H / (1.67492750056e-27 * 2000) * 1e9, "nanometer"),
    ("What is the energy in kWh used by a 2 kW heater running for 90 minutes?", "E", 3.0, "kilowatt_hour"),
]  # fmt: skip


@pytest.mark.parametrize("question,unknown,value,unit", WORKED, ids=[w[0][:60] for w in WORKED])
def test_a_worked_question_gives_the_value_by_hand(question, unknown, value, unit):
    assert looks_like_formula(question)
    answer = answer_formula(question)
    head = answer.split(" (", 1)[0]
    name, _, rest = head.partition(" = ")
    magnitude, _, printed_unit = rest.partition(" ")
    assert name == unknown, answer
    assert float(magnitude) == pytest.approx(value, rel=1e-6), answer
    assert printed_unit == (unit or ""), answer
    assert "source: " in answer or unknown == "M"  # the formula and its source are shown


@pytest.mark.parametrize(
    "question",
    [
        "What is the kinetic energy of a car?",  # no numbers: nothing to compute with
        "What is the kinetic energy of a 2 kg mass?",  # two variables left open
        "What is the kinetic energy of a 2 kg mass moving at 3 m/s in meters?",  # energy is no length
        "What is the pressure of 2 mol of an ideal gas at 300 K?",
        "What is the capital of France?",
        "What is the kinetic energy of a 1e999 kg mass moving at 3 m/s?",  # past a float
        "What is the kinetic energy of a 2 × 10^400 kg mass moving at 3 m/s?",
        "What is the pH of a 0 M HCl solution?",  # -inf is no answer
        "What is the de Broglie wavelength of an electron moving at 0 m/s?",  # a division by zero
        "A 2 kg stone with a 3 C charge falls from 10 m. How fast is it going?",  # two quantities unused
        "What is the escape velocity of a planet?",  # no mass, no radius, no body named
        # a formula that fits the numbers but gives another quantity than the one asked for
        "What is the wavelength of a 2 kg ball with a kinetic energy of 5 J?",
        "What is the weight of a 10 kg object on the Moon?",  # standard gravity is the Earth's
        # two steps (a total resistance, then a current): the resistance is not the current asked for
        "A 3 ohm and a 6 ohm resistor are connected in parallel to a 12 V battery. What is the total current?",
    ],
)
def test_a_question_the_formulas_do_not_settle_is_refused_with_the_reason(question):
    with pytest.raises(ModelCallFailed):
        answer_formula(question)


def test_a_quantity_the_formula_does_not_use_is_said_so_in_the_answer():
    answer = answer_formula(
        "A 2 kg object falls from a height of 10 m. What is its speed just before it hits the ground?"
    )
    assert "not used: 2 kg" in answer


def test_one_quantity_asked_for_in_another_unit_is_converted():
    assert answer_formula("How much energy in joules is 2.5 kWh?").startswith("9000000 joule ")


def test_a_negative_time_is_no_answer_and_two_masses_read_the_wrong_way_round_are_turned():
    from prsm.backends.formula_tool import Plan, _solve, _solve_either_way
    from prsm.errors import BadInstruction

    decay = next(f for f in formulas() if f.id == "half_life")
    q = registry().Quantity
    misread = Plan(
        decay, {"N_0": q(25, "gram"), "N": q(100, "gram"), "t": q(10, "year")}, decay.variables["T_h"], 0
    )
    with pytest.raises(BadInstruction, match="never negative"):
        _solve(misread)  # a negative half-life is no answer
    turned, value = _solve_either_way(misread)  # the two masses the other way round: 5 years
    assert turned.values["N_0"] == q(100, "gram") and value.to("year").magnitude == pytest.approx(5.0)
