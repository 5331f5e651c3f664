"""Risk of bias (reviewkit.rob): the tools' overall algorithms, the checks on the file people fill in,
the worked example's assessments, and robvis' two plots."""

import csv

import matplotlib.text
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from reviewkit.evidence import load_studies
from reviewkit.rob import (
    COLOURS,
    DOMAIN_NAMES,
    JUDGEMENTS,
    MAX_BYTES,
    NO_INFORMATION,
    RiskOfBiasError,
    allowed_overall,
    domains_for,
    figure,
    judgement_for,
    judgements_for,
    load_risk_of_bias,
    missing_assessments,
    overall_judgement,
    risk_of_bias_figure,
    rows_for_outcome,
    summary_plot,
    traffic_light,
    traffic_light_size,
)

from helpers import ROOT, STUDIES

EXAMPLE_ROB = ROOT / "data" / "extraction" / "risk_of_bias.csv"
HEADER = ["study_id", "study", "outcome_domain", "tool", "D1", "D2", "D3", "D4", "D5", "D6", "D7", "DS", "overall",
          "support", "source"]
NI = NO_INFORMATION
STUDY_TABLE = pd.DataFrame({
    "study_id": ["S:rct", "S:cross", "S:cohort", "S:series", "S:nodesign"],
    "study": ["Trial 2019", "Crossover 2017", "Cohort 2015", "Series 2024", "Unknown 2020"],
    "design": ["rct", "crossover_rct", "retrospective_cohort", "case_series", None],
    "source": ["x"] * 5,
})


# The overall algorithms -------------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "domains", "expected"), [
    ("RoB 2", ["low"] * 5, "low"),
    ("RoB 2", ["low", "some concerns", "low", "low", "low"], "some concerns"),
    ("RoB 2", ["some concerns"] * 3 + ["low"] * 2, "some concerns"),  # never escalated by count
    ("RoB 2", ["low", "high", NI, "some concerns", "low"], "high"),   # a known high settles it
    ("RoB 2", ["low", "some concerns", NI, "low", "low"], NI),        # the unknown domain could be high
    ("RoB 2", ["low", NI, "low", "low", "low"], NI),
    ("RoB 2", ["low", "low", "low", "low", "low", "some concerns"], "some concerns"),  # crossover: with DS
    ("ROBINS-I", ["low"] * 7, "low"),
    ("ROBINS-I", ["low", "moderate", "low", "low", "moderate", "low", "low"], "moderate"),
    ("ROBINS-I", ["serious", NI, "low", "low", "low", "low", "low"], "serious"),
    ("ROBINS-I", ["critical", "serious", "moderate", NI, "low", "low", "low"], "critical"),
    ("ROBINS-I", ["moderate", NI, "low", "low", "low", "low", "low"], NI),  # Table 3: no information
    ("ROBINS-I", [NI] * 7, NI),
])
def test_overall_follows_the_tools(tool, domains, expected):
    assert overall_judgement(tool, domains) == expected
    assert overall_judgement(tool, dict(zip(domains_for(tool, len(domains) == 6), domains))) == expected


@given(st.lists(st.sampled_from(JUDGEMENTS["RoB 2"]), min_size=5, max_size=6))
def test_rob2_overall_matches_its_definition(domains):
    overall = overall_judgement("RoB 2", domains)
    assert (overall == "low") == all(d == "low" for d in domains)
    assert (overall == "high") == ("high" in domains)
    assert (overall == NI) == ("high" not in domains and NI in domains)


@given(st.lists(st.sampled_from(JUDGEMENTS["ROBINS-I"]), min_size=7, max_size=7))
def test_robins_i_overall_matches_table_3(domains):
    overall = overall_judgement("ROBINS-I", domains)
    assert (overall == "critical") == ("critical" in domains)
    assert (overall == "serious") == ("serious" in domains and "critical" not in domains)
    assert (overall == NI) == (NI in domains and not {"serious", "critical"} & set(domains))
    assert (overall == "moderate") == (set(domains) <= {"low", "moderate"} and "moderate" in domains)


def test_the_reviewers_room_for_judgement():
    assert allowed_overall("RoB 2", ["some concerns", "low", "low", "low", "low"]) == ("some concerns",)
    assert allowed_overall("RoB 2", ["some concerns", "some concerns", "low", "low", "low"]) == ("some concerns", "high")
    assert allowed_overall("RoB 2", ["some concerns", "some concerns", NI, "low", "low"]) == (NI, "high")
    assert allowed_overall("ROBINS-I", ["moderate", NI, "low", "low", "low", "low", "low"]) == (NI, "moderate")
    assert allowed_overall("ROBINS-I", [NI] * 7) == (NI,)


@pytest.mark.parametrize(("tool", "domains", "message"), [
    ("RoB 1", ["low"], "unknown risk-of-bias tool 'RoB 1'"),
    ("RoB 2", [], "needs the domain judgements"),
    ("RoB 2", ["low", "moderate"], "'moderate' is not a judgement of the tool"),
    ("ROBINS-I", ["Low"], "'Low' is not a judgement of the tool"),
])
def test_overall_refuses_what_the_tool_does_not_have(tool, domains, message):
    with pytest.raises(RiskOfBiasError, match=message):
        overall_judgement(tool, domains)


# The file people fill in -------------------------------------------------------------------------


def row(study_id="S:rct", tool="RoB 2", fill=NI, **cells):
    n = 5 if tool == "RoB 2" else 7
    base = {"study_id": study_id, "study": "", "outcome_domain": "", "tool": tool, "overall": "", "support": "",
            "source": "abstract"}
    base |= {f"D{k}": fill for k in range(1, n + 1)} | {f"D{k}": "" for k in range(n + 1, 8)} | {"DS": ""}
    if study_id == "S:cross":
        base["DS"] = fill
    return base | cells


def write(tmp_path, rows, header=HEADER):
    path = tmp_path / "risk_of_bias.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        out = csv.writer(fh)
        out.writerow(header)
        for r in rows:
            out.writerow([r.get(c, "") for c in header])
    return path


def test_a_valid_file_loads_with_the_overall_filled_in(tmp_path):
    path = write(tmp_path, [
        row(D2="low", D3="high", support="D2: double-blind, placebo (abstract). D3: 40% lost (abstract)."),
        row("S:rct", outcome_domain="craving", fill="low",
            support="D1: x. D2: x. D3: x. D4: x. D5: x."),
        row("S:cross", D1="some concerns", DS="some concerns", overall="high",
            support="D1: sequence not random. DS: no washout. overall: two concerns together (full text)."),
        row("S:cohort", tool="ROBINS-I", D1="serious", support="D1: no adjustment for severity (abstract)."),
    ])
    table = load_risk_of_bias(path, STUDY_TABLE, outcome_domains=("craving", "abstinence"))
    assert list(table["overall"]) == ["high", "low", "high", "serious"]
    assert list(table["overall_by"]) == ["algorithm", "algorithm", "reviewer", "algorithm"]
    assert list(table["study"]) == ["Trial 2019", "Trial 2019", "Crossover 2017", "Cohort 2015"]
    assert table.loc[0, "DS"] is None and table.loc[2, "DS"] == "some concerns"
    assert table.loc[3, "D7"] == NI and table.loc[0, "D6"] is None
    assert table.loc[1, "outcome_domain"] == "craving" and table.loc[0, "outcome_domain"] is None
    assert list(table["row"]) == [2, 3, 4, 5]


def test_columns_people_add_are_kept(tmp_path):
    path = write(tmp_path, [row() | {"assessor": "AB"}], header=[*HEADER, "assessor"])
    assert load_risk_of_bias(path, STUDY_TABLE).loc[0, "assessor"] == "AB"


def test_a_missing_file_is_no_assessment_yet(tmp_path):
    table = load_risk_of_bias(tmp_path / "absent.csv", STUDY_TABLE)
    assert table.empty and "overall" in table.columns


@pytest.mark.parametrize(("header_change", "message"), [
    (("D1", "d1"), r"row 1, column 'd1': write it 'D1' \(column names are case-sensitive\)"),
    (("overall", "Overall"), r"column 'Overall': write it 'overall'"),
    (("DS", "D8"), r"column 'D8': not a domain of RoB 2 \(D1-D5, DS for crossover trials\) or ROBINS-I"),
    (("DS", "Domain 2"), r"column 'Domain 2': not a domain"),
    (("DS", "D1"), r"row 1: column 'D1' appears twice"),
    (("source", "sources"), r"missing column\(s\) source"),
])
def test_header_problems_are_named(tmp_path, header_change, message):
    old, new = header_change
    header = [new if c == old else c for c in HEADER]
    path = write(tmp_path, [], header=header)
    with pytest.raises(RiskOfBiasError, match=message):
        load_risk_of_bias(path, STUDY_TABLE)


@pytest.mark.parametrize(("cells", "column", "message"), [
    (row(tool="rob 2"), "tool", "write 'RoB 2' exactly"),
    (row(tool="ROBINS I"), "tool", "write 'ROBINS-I' exactly"),
    (row(tool="GRADE"), "tool", "'GRADE' is not a tool; the tools are RoB 2, ROBINS-I"),
    (row(D1="Low"), "D1", "write 'low' exactly"),
    (row(D1="some  concerns"), "D1", "write 'some concerns' exactly"),
    (row(D1="moderate"), "D1", "'moderate' is a ROBINS-I judgement; RoB 2 judgements are low, some concerns"),
    (row(D1="unclear"), "D1", "'unclear' is not a RoB 2 judgement"),
    (row(D3=""), "D3", "must not be empty: Bias due to missing outcome data; write 'no information'"),
    (row(tool="ROBINS-I"), "tool", "Trial 2019 has design 'rct' in studies.csv: assess it with RoB 2, not ROBINS-I"),
    (row("S:cohort"), "tool", "Cohort 2015 has design 'retrospective_cohort' .*assess it with ROBINS-I, not RoB 2"),
    (row("S:series"), "tool", "Series 2024 has design 'case_series' .*single-arm designs are not assessed"),
    (row("S:nodesign"), "tool", "studies.csv gives no design for Unknown 2020"),
    (row("S:absent"), "study_id", "'S:absent' is not in the table of included studies"),
    (row(""), "study_id", "must not be empty"),
    (row(DS=NI), "DS", r"must be empty: Domain S \(period and carryover effects\) is for crossover trials; "
                       "Trial 2019 has design 'rct'"),
    (row(D6=NI), "D6", "must be empty: RoB 2 has no domain D6"),
    (row("S:cross", DS=""), "DS", "must not be empty: Bias arising from period and carryover effects"),
    (row(study="Trial 2020"), "study", "'Trial 2020' but studies.csv calls 'S:rct' 'Trial 2019'"),
    (row(outcome_domain="mood"), "outcome_domain", "'mood' is not an outcome domain of the protocol"),
    (row(source=""), "source", "must say which sources were read"),
    (row(D2="low"), "support", "D2 is judged 'low': support must give the facts it rests on"),
    (row(D2="low", support="D3: something else"), "support", "D2 is judged 'low'"),
    (row(fill="low", overall="high", support="D1: a D2: b D3: c D4: d D5: e"), "overall",
     "'high' contradicts the domains: RoB 2 gives 'low'; leave it empty"),
    (row(fill="low", D1="some concerns", D2="some concerns", overall="high", support="D1: a D2: b D3: c D4: d D5: e"),
     "support",
     "the overall 'high' differs from the algorithm's 'some concerns': say why"),
    (row(overall="low"), "overall", "'low' contradicts the domains: RoB 2 gives 'no information'"),
])
def test_row_problems_name_file_row_and_column(tmp_path, cells, column, message):
    path = write(tmp_path, [row("S:cohort", tool="ROBINS-I"), cells])
    with pytest.raises(RiskOfBiasError, match=message) as info:
        load_risk_of_bias(path, STUDY_TABLE, outcome_domains=("craving",))
    text = str(info.value)
    assert text.startswith(f"{path}, row ") and f"column {column!r}" in text and "\n" not in text
    assert info.value.path == path and info.value.column == column and info.value.row == 3


def test_a_study_assessed_twice_for_the_same_outcome_is_an_error(tmp_path):
    path = write(tmp_path, [row(), row("S:cohort", tool="ROBINS-I"), row()])
    with pytest.raises(RiskOfBiasError, match=r"row 4: study 'S:rct' is assessed twice for all outcomes "
                                              r"\(empty outcome_domain\) \(rows 2 and 4\)"):
        load_risk_of_bias(path, STUDY_TABLE)
    path = write(tmp_path, [row(outcome_domain="craving"), row(outcome_domain="craving")])
    with pytest.raises(RiskOfBiasError, match="assessed twice for outcome domain 'craving'"):
        load_risk_of_bias(path, STUDY_TABLE)


def test_a_crossover_trial_needs_the_ds_column(tmp_path):
    path = write(tmp_path, [row("S:cross")], header=[c for c in HEADER if c != "DS"])
    with pytest.raises(RiskOfBiasError, match=r"missing column 'DS' \(Crossover 2017 is assessed with RoB 2: "
                                              "D1, DS, D2, D3, D4, D5\\)"):
        load_risk_of_bias(path, STUDY_TABLE)
    # A file of parallel-group trials does not need it.
    path = write(tmp_path, [row()], header=[c for c in HEADER if c not in ("DS", "D6", "D7")])
    assert load_risk_of_bias(path, STUDY_TABLE).loc[0, "overall"] == NI


def test_hostile_files_get_one_line_errors(tmp_path):
    path = tmp_path / "risk_of_bias.csv"
    path.write_bytes(b"x" * (MAX_BYTES + 1))
    with pytest.raises(RiskOfBiasError, match="larger than 2048 KiB"):
        load_risk_of_bias(path, STUDY_TABLE)
    path.write_bytes(",".join(HEADER).encode() + b"\nS:rct,\xff\xfe\n")
    with pytest.raises(RiskOfBiasError, match=r"not UTF-8 text \(byte \d+\)"):
        load_risk_of_bias(path, STUDY_TABLE)
    path.write_bytes(",".join(HEADER).encode() + b'\nS:rct,"unclosed\n')
    with pytest.raises(RiskOfBiasError, match="line 2: not a valid CSV row"):
        load_risk_of_bias(path, STUDY_TABLE)
    path.write_text(",".join(HEADER) + "\nS:rct,too,few\n", encoding="utf-8")
    with pytest.raises(RiskOfBiasError, match="row 2: 3 cells, the header has 15"):
        load_risk_of_bias(path, STUDY_TABLE)
    path.write_text("\n" + ",".join(HEADER) + "\n", encoding="utf-8")
    with pytest.raises(RiskOfBiasError, match="the first row must be the header"):
        load_risk_of_bias(path, STUDY_TABLE)
    long = write(tmp_path, [row(tool="R" * 100_000 + "\n=cmd")])
    with pytest.raises(RiskOfBiasError) as info:
        load_risk_of_bias(long, STUDY_TABLE)
    assert len(str(info.value)) < 300 and "\n" not in str(info.value)


# The worked example ------------------------------------------------------------------------------


def example_rows():
    with open(EXAMPLE_ROB, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_the_example_loads_and_every_judgement_is_the_tools():
    studies = load_studies(STUDIES)
    table = load_risk_of_bias(EXAMPLE_ROB, studies)
    assert len(table) == 15
    designs = dict(zip(studies["study_id"], studies["design"]))
    for _, r in table.iterrows():
        crossover = designs[r["study_id"]] == "crossover_rct"
        expected_tool = "RoB 2" if designs[r["study_id"]] in ("rct", "crossover_rct") else "ROBINS-I"
        assert r["tool"] == expected_tool
        for domain in domains_for(r["tool"], crossover):
            assert r[domain] in JUDGEMENTS[r["tool"]], (r["study"], domain)
        assert r["overall"] in JUDGEMENTS[r["tool"]]
    assert set(table.loc[table["DS"].notna(), "study"]) == {"Dakwar 2014", "Dakwar 2017"}
    # Every assessed design has a row, except the studies the protocol excludes at full text.
    excluded = set(studies.loc[studies["study"].isin(["Das 2019", "Grant 2020"]), "study_id"])
    assert set(missing_assessments(table, studies)) <= excluded
    assert not excluded & set(table["study_id"])


def test_the_example_never_guesses():
    """The sources are abstracts and summaries: a judgement other than 'no information' needs its facts."""
    rows = example_rows()
    judged = 0
    for r in rows:
        assert r["source"].strip(), r["study"]
        assert r["support"].strip(), r["study"]  # the facts the sources do give, even when nothing is judged
        for column in ("D1", "D2", "D3", "D4", "D5", "D6", "D7", "DS", "overall"):
            value = r[column].strip()
            if value and value != NI:
                judged += 1
                assert f"{column}:" in r["support"], (r["study"], column)
    # As read today every judgement is 'no information' (see data/extraction/README.md).
    assert judged == 0


# What the certainty-of-evidence step asks ---------------------------------------------------------


def test_judgements_for_a_synthesis_use_the_outcomes_row_when_there_is_one(tmp_path):
    path = write(tmp_path, [
        row(D2="some concerns", support="D2: open label (abstract)."),
        row(outcome_domain="craving", D2="high", support="D2: craving rated by unblinded staff (full text)."),
        row("S:cohort", tool="ROBINS-I", fill="low", D1="moderate",
            support="D1: a. D2: b. D3: c. D4: d. D5: e. D6: f. D7: g."),
    ])
    table = load_risk_of_bias(path, STUDY_TABLE)
    assert judgement_for(table, "S:rct") == NI
    assert judgement_for(table, "S:rct", "craving") == "high"
    assert judgement_for(table, "S:rct", "abstinence") == NI
    assert list(rows_for_outcome(table, "craving")["row"]) == [3, 4]
    frame = judgements_for(table, ["S:cohort", "S:rct"], "craving")
    assert list(frame["overall"]) == ["moderate", "high"]
    assert list(frame["severity"]) == [1, 2]
    assert list(frame["outcome_domain"]) == [None, "craving"]
    assert judgements_for(table, ["S:rct"])["severity"].isna().all()
    with pytest.raises(RiskOfBiasError, match="study 'S:cross' has no risk-of-bias assessment for outcome domain"):
        judgements_for(table, ["S:cross"], "craving")


# The plots ---------------------------------------------------------------------------------------


def constructed_table(tmp_path):
    """Every judgement of both tools, a crossover and two parallel-group trials."""
    studies = pd.DataFrame({
        "study_id": ["A", "B", "C", "D", "E"],
        "study": ["Alpha 2019", "Beta 2020", "Gamma 2017", "Delta 2015", "Epsilon 2018"],
        "design": ["rct", "rct", "crossover_rct", "prospective_cohort", "retrospective_cohort"],
    })
    support5 = "D1: a. D2: b. D3: c. D4: d. D5: e. DS: f."
    path = write(tmp_path, [
        row("A", fill="low", support=support5),
        row("B", D1="some concerns", D2="low", D3="high", D4="low", support=support5),
        row("C", D1="low", D2="low", D3=NI, D4="low", D5="some concerns", support=support5) | {"DS": "some concerns"},
        row("D", tool="ROBINS-I", D1="serious", D2="moderate", D3="low", D5="critical", D6="low",
            support="D1: a. D2: b. D3: c. D5: e. D6: f."),
        row("E", tool="ROBINS-I", fill="low", D1="moderate", support="D1: a. D2: b. D3: c. D4: d. D5: e. D6: f. D7: g."),
    ])
    return load_risk_of_bias(path, studies)


def test_traffic_light_draws_one_light_per_cell_in_robvis_colours(tmp_path):
    from matplotlib.figure import Figure

    table = constructed_table(tmp_path)
    rob2 = table[table["tool"] == "RoB 2"]
    fig = Figure(figsize=traffic_light_size(rob2))
    ax = traffic_light(fig.add_axes((0, 0, 1, 1)), rob2)
    lights = [p for p in ax.patches if (p.get_gid() or "").startswith("rob-light-")]
    legend = ["High", "Some concerns", "Low", "No information", "Not applicable"]
    assert len(lights) == 3 * 7 + len(legend)  # D1, DS, D2-D5 and Overall per trial, then the legend
    gids = [p.get_gid() for p in lights]
    assert gids.count("rob-light-not-applicable") == 2 + 1  # DS of the parallel trials, and its legend entry
    assert gids.count("rob-light-high") == 2 + 1  # Beta's D3 and overall
    texts = {t.get_text() for t in ax.texts}
    assert {"Alpha 2019", "Gamma 2017", "D1", "DS", "Overall", "Risk of bias domains", "Study", "Judgement",
            "High", "Some concerns", "Low", "No information", "Not applicable",
            "DS: Bias arising from period and carryover effects."} <= texts
    with pytest.raises(RiskOfBiasError, match="one tool; the table has RoB 2, ROBINS-I: pass tool="):
        traffic_light(fig.add_axes((0, 0, 1, 1)), table)


def test_summary_plot_stacks_weighted_shares_per_domain(tmp_path):
    from matplotlib.figure import Figure

    table = constructed_table(tmp_path)
    fig = Figure(figsize=(9, 3))
    ax = summary_plot(fig.add_axes((0.4, 0.3, 0.55, 0.6)), table, tool="RoB 2", weights={"A": 3, "B": 1, "C": 1})
    bars = [p for p in ax.patches if (p.get_gid() or "").startswith("rob-bar-")]
    by_row: dict[float, float] = {}
    for bar in bars:
        by_row[bar.get_y()] = by_row.get(bar.get_y(), 0) + bar.get_width()
    assert len(by_row) == 7 and all(total == pytest.approx(1) for total in by_row.values())
    overall_low = [b for b in bars if b.get_gid() == "rob-bar-low" and b.get_y() == min(by_row)]
    assert overall_low[0].get_width() == pytest.approx(3 / 5)  # Alpha, weight 3 of 5, is low overall
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels[0] == "Overall risk of bias" and labels[-1] == DOMAIN_NAMES["RoB 2"]["D1"]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["Low risk", "Some concerns", "High risk",
                                                                  "No information", "Not applicable"]
    with pytest.raises(RiskOfBiasError, match="no weight for study 'C'"):
        summary_plot(ax, table, tool="RoB 2", weights={"A": 1, "B": 1})
    twice = pd.concat([table, table.iloc[[0]]])
    with pytest.raises(RiskOfBiasError, match="study 'A' has more than one row"):
        summary_plot(ax, twice, tool="RoB 2")


def test_figure_writes_png_and_svg_with_every_element_at_8_pt_or_more(tmp_path):
    table = constructed_table(tmp_path)
    fig = figure(table, note="Constructed assessments.")
    small = [(t.get_text(), t.get_fontsize()) for t in fig.findobj(matplotlib.text.Text)
             if t.get_visible() and t.get_text().strip() and t.get_fontsize() < 8]
    assert not small
    png, svg = risk_of_bias_figure(table, tmp_path / "rob", note="Constructed assessments.")
    assert png.name == "rob.png" and svg.name == "rob.svg"
    text = svg.read_text(encoding="utf-8")
    for expected in ("Randomized trials: RoB 2", "Non-randomized studies of interventions: ROBINS-I",
                     "Alpha 2019", "Epsilon 2018", "Overall risk of bias", "Bias due to confounding",
                     "Critical risk", "Serious risk", "Moderate risk", "Constructed assessments."):
        assert expected in text, expected
    for judgement in ("low", "some concerns", "high", NI, "serious", "critical", "not applicable"):
        assert COLOURS[judgement].lower() in text.lower(), judgement
    pixels = {colour for _, colour in Image.open(png).convert("RGB").getcolors(maxcolors=1 << 24)}
    for colour in {COLOURS[j] for j in COLOURS}:
        rgb = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert rgb in pixels, colour


def test_reruns_write_the_same_svg(tmp_path):
    table = constructed_table(tmp_path).iloc[[0]]
    _, svg = risk_of_bias_figure(table, tmp_path / "a")
    _, again = risk_of_bias_figure(table, tmp_path / "b")
    assert svg.read_bytes() == again.read_bytes()


def test_figure_of_no_assessment_says_so(tmp_path):
    table = load_risk_of_bias(tmp_path / "absent.csv", STUDY_TABLE)
    fig = figure(table)
    assert "No included study has a risk-of-bias assessment." in {t.get_text() for t in fig.texts}


def test_labels_with_dollar_signs_print_as_typed(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    studies = STUDY_TABLE.assign(study=["Smith $x^$ 2019", *STUDY_TABLE["study"][1:]])
    table = load_risk_of_bias(write(tmp_path, [row(outcome_domain="use $")]), studies)
    fig = figure(table, note="cost $5 ^")
    FigureCanvasAgg(fig).draw()  # malformed mathtext would raise here
    assert "Smith $x^$ 2019 (use $)" in {t.get_text() for ax in fig.axes for t in ax.texts}
