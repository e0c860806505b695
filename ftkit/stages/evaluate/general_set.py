"""The shipped general-ability set: Chinese multiple-choice questions written for this project.

Nine subjects, in C-Eval's layout (`val/{subject}_val.csv` scored, `dev/{subject}_dev.csv` the k-shot
examples, `subject_mapping.json`), so the demo and the tests run the path a user's C-Eval or CMMLU
download takes. Every answer is a checkable fact: computed here (arithmetic, units, calendar, number
properties, clock time) or looked up in a table written out below (capitals, abbreviations, antonyms,
idioms). Distractors are drawn so that exactly one option is right, and the right letter is spread
evenly over A-D by a seeded draw. `python -m ftkit.stages.evaluate.general_set` rewrites the files; a test checks the
shipped ones equal what this module writes, so nobody edits an answer by hand.
"""
from __future__ import annotations

import argparse
import calendar
import csv
import datetime
import io
import json
import math
import random
from collections.abc import Callable
from pathlib import Path

from ftkit import ASSETS

SHIPPED = ASSETS / "general_zh"
LETTERS = "ABCD"
SEED = 20261130
DEV_PER_SUBJECT = 5

# province-level divisions and their capitals (the four municipalities, Hong Kong and Macao have none)
PROVINCE_CAPITALS = {
    "河北省": "石家庄", "山西省": "太原", "辽宁省": "沈阳", "吉林省": "长春", "黑龙江省": "哈尔滨",
    "江苏省": "南京", "浙江省": "杭州", "安徽省": "合肥", "福建省": "福州", "江西省": "南昌",
    "山东省": "济南", "河南省": "郑州", "湖北省": "武汉", "湖南省": "长沙", "广东省": "广州",
    "海南省": "海口", "四川省": "成都", "贵州省": "贵阳", "云南省": "昆明", "陕西省": "西安",
    "甘肃省": "兰州", "青海省": "西宁", "内蒙古自治区": "呼和浩特", "广西壮族自治区": "南宁",
    "西藏自治区": "拉萨", "宁夏回族自治区": "银川", "新疆维吾尔自治区": "乌鲁木齐",
}
# (question, answer, three wrong options)
GEOGRAPHY_FACTS = [
    ("中国最长的河流是哪一条？", "长江", ("黄河", "珠江", "黑龙江")),
    ("中国面积最大的省级行政区是哪一个？", "新疆维吾尔自治区", ("西藏自治区", "内蒙古自治区", "青海省")),
    ("中国最北端的省级行政区是哪一个？", "黑龙江省", ("吉林省", "辽宁省", "河北省")),
    ("中国最南端的省级行政区是哪一个？", "海南省", ("广东省", "广西壮族自治区", "云南省")),
    ("泰山位于哪个省？", "山东省", ("河南省", "山西省", "安徽省")),
    ("黄山位于哪个省？", "安徽省", ("江西省", "浙江省", "湖南省")),
    ("西湖位于哪座城市？", "杭州", ("苏州", "南京", "上海")),
    ("中国的首都是哪座城市？", "北京", ("上海", "南京", "西安")),
]
PROVINCE_ABBREVIATIONS = {
    "北京市": "京", "天津市": "津", "上海市": "沪", "重庆市": "渝", "河北省": "冀", "山西省": "晋",
    "辽宁省": "辽", "吉林省": "吉", "黑龙江省": "黑", "江苏省": "苏", "浙江省": "浙", "安徽省": "皖",
    "福建省": "闽", "江西省": "赣", "山东省": "鲁", "河南省": "豫", "湖北省": "鄂", "湖南省": "湘",
    "广东省": "粤", "海南省": "琼", "四川省": "川", "贵州省": "黔", "云南省": "滇", "陕西省": "陕",
    "甘肃省": "甘", "青海省": "青", "台湾省": "台", "内蒙古自治区": "蒙", "广西壮族自治区": "桂",
    "西藏自治区": "藏", "宁夏回族自治区": "宁", "新疆维吾尔自治区": "新", "香港特别行政区": "港",
    "澳门特别行政区": "澳",
}
# second abbreviations, never offered as a wrong option for their own province
OTHER_ABBREVIATIONS = {"四川省": "蜀", "贵州省": "贵", "云南省": "云", "陕西省": "秦", "甘肃省": "陇"}
# each word appears once, so no wrong option is a second antonym
ANTONYMS = [
    ("大", "小"), ("多", "少"), ("长", "短"), ("高", "低"), ("快", "慢"), ("冷", "热"), ("黑", "白"),
    ("开", "关"), ("前", "后"), ("上", "下"), ("左", "右"), ("进", "出"), ("胖", "瘦"), ("远", "近"),
    ("新", "旧"), ("早", "晚"), ("真", "假"), ("美", "丑"), ("轻", "重"), ("深", "浅"), ("宽", "窄"),
    ("厚", "薄"), ("强", "弱"), ("买", "卖"), ("来", "去"), ("哭", "笑"), ("对", "错"), ("古", "今"),
    ("南", "北"), ("软", "硬"), ("粗", "细"), ("明", "暗"), ("难", "易"), ("干", "湿"), ("甜", "苦"),
]
# (idiom with the missing character as （ ）, the character)
IDIOMS = [
    ("画蛇添（ ）", "足"), ("守株待（ ）", "兔"), ("亡羊补（ ）", "牢"), ("对牛弹（ ）", "琴"),
    ("井底之（ ）", "蛙"), ("掩耳盗（ ）", "铃"), ("刻舟求（ ）", "剑"), ("狐假虎（ ）", "威"),
    ("杯弓蛇（ ）", "影"), ("拔苗助（ ）", "长"), ("叶公好（ ）", "龙"), ("望梅止（ ）", "渴"),
    ("胸有成（ ）", "竹"), ("一箭双（ ）", "雕"), ("半途而（ ）", "废"), ("自相矛（ ）", "盾"),
    ("画龙点（ ）", "睛"), ("卧薪尝（ ）", "胆"), ("纸上谈（ ）", "兵"), ("闻鸡起（ ）", "舞"),
    ("滥竽充（ ）", "数"), ("百发百（ ）", "中"), ("完璧归（ ）", "赵"), ("破釜沉（ ）", "舟"),
    ("负荆请（ ）", "罪"),
]
# (from unit, to unit, factor): 1 from-unit = factor to-units
UNITS = [
    ("千米", "米", 1000), ("米", "厘米", 100), ("米", "毫米", 1000), ("千克", "克", 1000), ("吨", "千克", 1000),
    ("小时", "分钟", 60), ("分钟", "秒", 60), ("升", "毫升", 1000), ("平方米", "平方分米", 100), ("元", "角", 10),
    ("元", "分", 100), ("天", "小时", 24), ("公顷", "平方米", 10000), ("分米", "厘米", 10),
]
WEEKDAYS = "一二三四五六日"
SUBJECTS = {  # C-Eval's subject_mapping.json: id -> [English name, Chinese name, category]
    "arithmetic": ["Arithmetic", "算术", "STEM"],
    "unit_conversion": ["Unit Conversion", "单位换算", "STEM"],
    "calendar": ["Calendar", "日历", "STEM"],
    "number_properties": ["Number Properties", "数的性质", "STEM"],
    "clock_time": ["Clock Time", "时间计算", "STEM"],
    "china_geography": ["China Geography", "中国地理", "Social Science"],
    "province_abbreviations": ["Province Abbreviations", "省级行政区简称", "Social Science"],
    "chinese_antonyms": ["Chinese Antonyms", "汉语反义词", "Humanities"],
    "chinese_idioms": ["Chinese Idioms", "成语", "Humanities"],
}


def _options(right: str, wrong: list[str], letter: int) -> list[str]:
    """Four options, the right one at `letter`; the wrong ones distinct from it and each other."""
    wrong = [w for w in dict.fromkeys(wrong) if w != right][:3]
    if len(wrong) < 3:
        raise ValueError(f"fewer than three wrong options for {right!r}")
    return wrong[:letter] + [right] + wrong[letter:]


def _near_numbers(rng: random.Random, value: int, spread: list[int]) -> list[str]:
    return [str(value + d) for d in rng.sample(spread, len(spread)) if value + d >= 0]


def arithmetic(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            a, b = rng.randint(12, 99), rng.randint(12, 99)
            text, value = f"{a} + {b} 等于多少？", a + b
        elif kind == 1:
            a, b = rng.randint(50, 199), rng.randint(11, 49)
            text, value = f"{a} - {b} 等于多少？", a - b
        elif kind == 2:
            a, b = rng.randint(3, 19), rng.randint(3, 19)
            text, value = f"{a} × {b} 等于多少？", a * b
        else:
            b, value = rng.randint(3, 12), rng.randint(4, 19)
            text = f"{b * value} ÷ {b} 等于多少？"
        questions.append((text, str(value), _near_numbers(rng, value, [-10, -2, -1, 1, 2, 10])))
    return questions


def unit_conversion(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for i in range(n):
        big, small, factor = UNITS[i % len(UNITS)]
        amount = rng.randint(2, 9)
        value = amount * factor
        wrong = [str(value * 10), str(value // 10) if value % 10 == 0 else str(value + factor), str(amount * 100 + 1),
                 str(value + amount)]
        questions.append((f"{amount} {big}等于多少{small}？", str(value), wrong))
    return questions


def calendar_questions(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for i in range(n):
        year = rng.randint(1990, 2030)
        if i % 3 == 0:
            day = datetime.date(year, rng.randint(1, 12), rng.randint(1, 28))
            right = f"星期{WEEKDAYS[day.weekday()]}"
            wrong = [f"星期{WEEKDAYS[(day.weekday() + d) % 7]}" for d in rng.sample(range(1, 7), 6)]
            questions.append((f"{day.year}年{day.month}月{day.day}日是星期几？", right, wrong))
        elif i % 3 == 1:
            month = rng.choice([2, 2, 4, 6, 9, 11, 1, 3])
            days = calendar.monthrange(year, month)[1]
            wrong = [str(d) for d in (28, 29, 30, 31) if d != days]
            questions.append((f"{year}年{month}月有多少天？", str(days), wrong))
        else:
            start = datetime.date(year, rng.randint(1, 12), rng.randint(1, 28))
            later = rng.randint(10, 40)
            end = start + datetime.timedelta(days=later)
            wrong = [f"{d.month}月{d.day}日" for d in (end + datetime.timedelta(days=k) for k in (-2, -1, 1, 2))]
            questions.append((f"从{start.year}年{start.month}月{start.day}日起再过{later}天是几月几日？",
                              f"{end.month}月{end.day}日", rng.sample(wrong, 4)))
    return questions


def _is_prime(k: int) -> bool:
    return k > 1 and all(k % d for d in range(2, math.isqrt(k) + 1))


def number_properties(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            right = rng.choice([p for p in range(20, 100) if _is_prime(p)])
            wrong = rng.sample([k for k in range(20, 100) if not _is_prime(k) and k % 2], 3)
            questions.append(("下列哪个数是质数？", str(right), [str(w) for w in wrong]))
        elif kind == 1:
            g = rng.randint(2, 12)
            a, b = g * rng.randint(2, 9), g * rng.randint(2, 9)
            while math.gcd(a, b) != g:
                b = g * rng.randint(2, 9)
            wrong = [str(v) for v in rng.sample([g * 2, g + 1, max(g - 1, 1), a * b // g, g * 3], 5) if v != g]
            questions.append((f"{a} 和 {b} 的最大公因数是多少？", str(g), wrong))
        else:
            right = 9 * rng.randint(12, 111)
            wrong = [k for k in rng.sample(range(100, 1000), 40) if k % 9 and k % 3][:3]
            questions.append(("下列哪个数能被 9 整除？", str(right), [str(w) for w in wrong]))
    return questions


def clock_time(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for _ in range(n):
        start = rng.randint(6 * 60, 14 * 60 - 1) // 5 * 5
        later = rng.randint(1, 8) * 15 + rng.choice([0, 60, 120])
        end = start + later

        def clock(minutes: int) -> str:
            return f"{minutes // 60 % 24}:{minutes % 60:02d}"

        wrong = [clock(end + d) for d in (-60, 60, -15, 15, 30)]
        hours, minutes = divmod(later, 60)
        span = " ".join(part for part in (f"{hours} 小时" if hours else "", f"{minutes} 分钟" if minutes else "") if part)
        questions.append((f"现在是 {clock(start)}，再过 {span}是几点？", clock(end), rng.sample(wrong, 5)))
    return questions


def china_geography(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = [(q, a, list(w)) for q, a, w in GEOGRAPHY_FACTS]
    for province, capital in PROVINCE_CAPITALS.items():
        others = [c for p, c in PROVINCE_CAPITALS.items() if p != province]
        questions.append((f"{province}的省会（首府）是哪座城市？", capital, rng.sample(others, 3)))
    return _take(rng, questions, n)


def province_abbreviations(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for place, short in PROVINCE_ABBREVIATIONS.items():
        own = {short, OTHER_ABBREVIATIONS.get(place)}
        others = [s for s in PROVINCE_ABBREVIATIONS.values() if s not in own]
        questions.append((f"{place}的简称是什么？", short, rng.sample(others, 3)))
    return _take(rng, questions, n)


def chinese_antonyms(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for word, opposite in ANTONYMS:
        pool = [w for pair in ANTONYMS if pair != (word, opposite) for w in pair]
        questions.append((f"“{word}”的反义词是哪个字？", opposite, rng.sample(pool, 3)))
    return _take(rng, questions, n)


def chinese_idioms(rng: random.Random, n: int) -> list[tuple[str, str, list[str]]]:
    questions = []
    for idiom, char in IDIOMS:
        pool = [c for i, c in IDIOMS if c != char]
        questions.append((f"成语“{idiom}”括号里应填哪个字？", char, rng.sample(pool, 3)))
    return _take(rng, questions, n)


def _take(rng: random.Random, questions: list, n: int) -> list:
    rng.shuffle(questions)
    return questions[:n]


MAKERS: dict[str, tuple[Callable, int]] = {  # subject -> (maker, questions in all: dev + val)
    "arithmetic": (arithmetic, 35), "unit_conversion": (unit_conversion, 33), "calendar": (calendar_questions, 36),
    "number_properties": (number_properties, 33), "clock_time": (clock_time, 33),
    "china_geography": (china_geography, 35), "province_abbreviations": (province_abbreviations, 34),
    "chinese_antonyms": (chinese_antonyms, 35), "chinese_idioms": (chinese_idioms, 25),
}


def subject_rows(subject: str) -> list[dict]:
    """Every question of one subject as C-Eval rows (id, question, A-D, answer), dev first."""
    maker, count = MAKERS[subject]
    rng = random.Random(f"{SEED}-{subject}")
    unique = {(text, right): wrong for text, right, wrong in maker(rng, 2 * count)}  # a repeat is left out
    if len(unique) < count:
        raise ValueError(f"{subject}: {len(unique)} distinct questions, {count} wanted")
    letters = [i % 4 for i in range(count)]  # each letter right as often as the others
    rng.shuffle(letters)
    return [{"question": text, **dict(zip(LETTERS, _options(right, wrong, letter), strict=True)), "answer": LETTERS[letter]}
            for ((text, right), wrong), letter in zip(list(unique.items())[:count], letters, strict=True)]


def _csv(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, ["id", "question", *LETTERS, "answer"], lineterminator="\n")
    writer.writeheader()
    for i, row in enumerate(rows):
        writer.writerow({"id": i, **row})
    return buffer.getvalue()


def files() -> dict[str, str]:
    """Relative path -> text of every file of the set."""
    out = {"subject_mapping.json": json.dumps(SUBJECTS, ensure_ascii=False, indent=1) + "\n"}
    for subject in SUBJECTS:
        rows = subject_rows(subject)
        out[f"dev/{subject}_dev.csv"] = _csv(rows[:DEV_PER_SUBJECT])
        out[f"val/{subject}_val.csv"] = _csv(rows[DEV_PER_SUBJECT:])
    return out


def write(folder: Path) -> None:
    from ftkit.core.io import write_text_atomic

    for name, text in files().items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(folder / name, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=SHIPPED, help="folder to write (default: the shipped set)")
    args = parser.parse_args(argv)
    write(args.output)
    print(f"wrote {len(files())} files to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
