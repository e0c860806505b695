"""Sample Chinese Q&A data (alpaca format) for smoke tests and the demo.

Records come from templated families (capitals, arithmetic, unit conversion, definitions, antonyms,
translation, weekday reasoning, short writing with an `input`). Every answer is computed or looked up,
so it is correct and self-consistent; each family has many members, so a random test split holds
unseen members of every family, and a small model can measurably learn the patterns.

With a reasoning share (THINKING=on|mixed runs), that share of the records carries a short reasoning
trace, in the two layouts distilled data sets use: half in a `reasoning_content` field, half inline as
`<think>…</think>` before the answer.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator

from ftkit.config import defaults

DEFAULT_NUM = defaults.NUM_SAMPLES

CAPITALS = {
    "中国": "北京", "日本": "东京", "韩国": "首尔", "法国": "巴黎", "德国": "柏林", "英国": "伦敦",
    "意大利": "罗马", "西班牙": "马德里", "俄罗斯": "莫斯科", "美国": "华盛顿", "加拿大": "渥太华",
    "澳大利亚": "堪培拉", "埃及": "开罗", "印度": "新德里", "泰国": "曼谷", "越南": "河内",
    "巴西": "巴西利亚", "阿根廷": "布宜诺斯艾利斯", "墨西哥": "墨西哥城", "希腊": "雅典",
    "土耳其": "安卡拉", "荷兰": "阿姆斯特丹", "瑞典": "斯德哥尔摩", "挪威": "奥斯陆", "芬兰": "赫尔辛基",
    "波兰": "华沙", "葡萄牙": "里斯本", "新加坡": "新加坡", "马来西亚": "吉隆坡", "印度尼西亚": "雅加达",
    "菲律宾": "马尼拉", "蒙古": "乌兰巴托", "伊朗": "德黑兰", "肯尼亚": "内罗毕", "新西兰": "惠灵顿",
    "爱尔兰": "都柏林", "奥地利": "维也纳", "瑞士": "伯尔尼", "比利时": "布鲁塞尔", "丹麦": "哥本哈根",
}

DEFINITIONS = {
    "光合作用": "绿色植物利用光能，把二氧化碳和水转化为有机物并释放氧气的过程",
    "机器学习": "让计算机从数据中自动学习规律，并用学到的规律做出预测的方法",
    "微调": "在预训练模型的基础上，用少量任务数据继续训练，使模型适应特定任务的方法",
    "LoRA": "一种参数高效的微调方法，它冻结原模型权重，只训练插入的低秩矩阵",
    "量化": "用更少的比特表示模型权重，以减少显存占用和加快推理的技术",
    "过拟合": "模型在训练数据上表现很好，但在新数据上表现变差的现象",
    "验证集": "训练过程中用来调整超参数和判断是否过拟合的数据集",
    "测试集": "训练结束后用来评估模型最终效果的数据集",
    "学习率": "每一步训练中参数更新幅度的大小",
    "神经网络": "由大量相互连接的神经元组成、可以从数据中学习的计算模型",
    "蒸发": "液体表面的分子变成气体的过程",
    "重力": "地球对物体的吸引力",
    "生态系统": "一定区域内生物和环境相互作用形成的统一整体",
    "细胞": "生物体结构和功能的基本单位",
    "民主": "人民享有参与国家事务管理权利的制度",
    "通货膨胀": "一段时间内物价水平普遍持续上涨、货币购买力下降的现象",
    "成语": "汉语中长期沿用、结构固定、意义完整的短语，多数由四个字组成",
    "比喻": "用一种事物来描写或说明另一种相似事物的修辞手法",
    "质数": "大于一且只能被一和它本身整除的自然数",
    "平均数": "一组数据的总和除以数据的个数所得的结果",
    "操作系统": "管理计算机硬件和软件资源、为程序提供服务的系统软件",
    "数据库": "按照一定结构组织、存储和管理数据的仓库",
    "互联网": "由许多计算机网络相互连接而成的全球性网络",
    "可再生能源": "可以在自然界中不断再生的能源，例如太阳能、风能和水能",
    "温室效应": "大气中的温室气体吸收地面辐射，使地球表面温度升高的现象",
}

ANTONYMS = {
    "大": "小", "高": "低", "长": "短", "快": "慢", "多": "少", "冷": "热", "黑": "白", "新": "旧",
    "远": "近", "轻": "重", "开": "关", "上": "下", "左": "右", "前": "后", "早": "晚", "胖": "瘦",
    "真": "假", "美": "丑", "深": "浅", "宽": "窄", "干净": "肮脏", "勇敢": "胆小", "成功": "失败",
    "简单": "复杂", "安全": "危险", "快乐": "悲伤", "开始": "结束", "增加": "减少", "进步": "退步",
    "光明": "黑暗",
}

TRANSLATIONS = {
    "apple": "苹果", "book": "书", "water": "水", "teacher": "老师", "student": "学生", "computer": "电脑",
    "friend": "朋友", "family": "家庭", "school": "学校", "river": "河流", "mountain": "山", "city": "城市",
    "flower": "花", "tree": "树", "sun": "太阳", "moon": "月亮", "star": "星星", "music": "音乐",
    "doctor": "医生", "hospital": "医院", "library": "图书馆", "science": "科学", "history": "历史",
    "weather": "天气", "breakfast": "早餐", "train": "火车", "airplane": "飞机", "language": "语言",
    "question": "问题", "answer": "答案",
}

UNITS = [  # (from, to, factor, numbers)
    ("公里", "米", 1000, range(1, 16)),
    ("米", "厘米", 100, range(1, 16)),
    ("千克", "克", 1000, range(1, 16)),
    ("小时", "分钟", 60, range(1, 13)),
    ("分钟", "秒", 60, range(1, 13)),
    ("升", "毫升", 1000, range(1, 11)),
    ("吨", "千克", 1000, range(1, 11)),
    ("天", "小时", 24, range(1, 11)),
]

WEEKDAYS = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]
CHINESE_DIGITS = "零一二三四五六七八九十"

WRITING_TOPICS = {  # keyword pair -> one sentence that uses both, in a fixed frame
    ("春天", "花"): "春天来了，花园里的花都开了。",
    ("夏天", "西瓜"): "夏天很热，吃一块冰西瓜最舒服。",
    ("秋天", "落叶"): "秋天到了，路边铺满了金黄的落叶。",
    ("冬天", "雪"): "冬天下雪了，孩子们在雪地里堆雪人。",
    ("早晨", "太阳"): "早晨，太阳慢慢从东方升起。",
    ("夜晚", "月亮"): "夜晚，明亮的月亮挂在天空中。",
    ("学校", "老师"): "在学校里，老师耐心地给我们讲课。",
    ("图书馆", "书"): "周末我去图书馆借了一本有趣的书。",
    ("公园", "散步"): "晚饭后，我和家人去公园散步。",
    ("雨", "雨伞"): "外面下雨了，出门记得带上雨伞。",
    ("朋友", "帮助"): "朋友遇到困难时，我们应该主动帮助他。",
    ("运动", "健康"): "坚持运动可以让身体更加健康。",
    ("读书", "知识"): "多读书可以让我们获得更多知识。",
    ("大海", "海浪"): "站在海边，可以听到海浪拍打沙滩的声音。",
    ("妈妈", "饭菜"): "妈妈做了一桌香喷喷的饭菜。",
    ("小鸟", "树"): "一只小鸟在树上快乐地唱歌。",
    ("电脑", "学习"): "我们可以用电脑在网上学习新知识。",
    ("节约", "水"): "我们要节约用水，不要让水龙头一直开着。",
    ("星空", "梦想"): "望着满天星空，我想起了自己的梦想。",
    ("火车", "旅行"): "暑假里，我们坐火车去外地旅行。",
}


def _capitals() -> Iterator[dict]:
    for country, capital in CAPITALS.items():
        yield {"instruction": f"{country}的首都是哪里？", "input": "", "output": f"{country}的首都是{capital}。"}


def _arithmetic() -> Iterator[dict]:
    for a in range(2, 30, 3):
        for b in range(3, 25, 4):
            yield {"instruction": f"请计算：{a} + {b} 等于多少？", "input": "", "output": f"{a} + {b} = {a + b}。"}
            yield {"instruction": f"请计算：{a} × {b} 等于多少？", "input": "", "output": f"{a} × {b} = {a * b}。"}
            if a > b:
                yield {"instruction": f"请计算：{a} - {b} 等于多少？", "input": "", "output": f"{a} - {b} = {a - b}。"}


def _units() -> Iterator[dict]:
    for src, dst, factor, numbers in UNITS:
        for n in numbers:
            yield {"instruction": f"{n}{src}等于多少{dst}？", "input": "", "output": f"{n}{src}等于{n * factor}{dst}。"}


def _definitions() -> Iterator[dict]:
    for term, meaning in DEFINITIONS.items():
        yield {"instruction": f"什么是{term}？", "input": "", "output": f"{term}是{meaning}。"}


def _antonyms() -> Iterator[dict]:
    for word, opposite in ANTONYMS.items():
        yield {"instruction": f"“{word}”的反义词是什么？", "input": "", "output": f"“{word}”的反义词是“{opposite}”。"}


def _translations() -> Iterator[dict]:
    for english, chinese in TRANSLATIONS.items():
        yield {"instruction": "请把下面的英文单词翻译成中文。", "input": english,
               "output": f"“{english}”的中文意思是“{chinese}”。"}


def _weekdays() -> Iterator[dict]:
    for start, day in enumerate(WEEKDAYS):
        for later in range(1, 7):
            target = WEEKDAYS[(start + later) % 7]
            yield {"instruction": f"今天是{day}，{CHINESE_DIGITS[later]}天后是星期几？", "input": "",
                   "output": f"今天是{day}，{CHINESE_DIGITS[later]}天后是{target}。"}


def _writing() -> Iterator[dict]:
    for (first, second), sentence in WRITING_TOPICS.items():
        yield {"instruction": "请用下面的两个词语写一句话。", "input": f"{first}，{second}", "output": sentence}


FAMILIES: dict[str, Callable[[], Iterator[dict]]] = {
    "首都": _capitals, "算术": _arithmetic, "单位换算": _units, "定义": _definitions,
    "反义词": _antonyms, "翻译": _translations, "星期推理": _weekdays, "写作": _writing,
}


def pool_size() -> int:
    return sum(sum(1 for _ in family()) for family in FAMILIES.values())


def reasoning_for(record: dict) -> str:
    """A short trace that names the kind of question and reaches the answer (short: on the CPU, a trace costs
    training time in the output layer like any supervised token)."""
    return f"这是{record['category']}题。答案：{record['output']}"


def add_reasoning(records: list[dict], share: float, seed: int) -> None:
    """Give `share` of the records a trace, alternately as a reasoning_content field and inline <think>."""
    if not 0 <= share <= 1:
        raise ValueError("--reasoning-share must be between 0 and 1")
    rng = random.Random(seed + 1)  # its own stream: the records drawn do not depend on the share
    chosen = [r for r in records if rng.random() < share]
    for k, record in enumerate(chosen):
        trace = reasoning_for(record)
        if k % 2:
            record["output"] = f"<think>\n{trace}\n</think>\n\n{record['output']}"
        else:
            record["reasoning_content"] = trace


def generate(num: int = DEFAULT_NUM, seed: int = defaults.SEED, reasoning_share: float = 0.0) -> list[dict]:
    """`num` distinct records, drawn round-robin across families so every family is represented;
    `reasoning_share` of them with a reasoning trace."""
    rng = random.Random(seed)
    pools = []
    for category, family in FAMILIES.items():
        members = [dict(record, category=category) for record in family()]
        rng.shuffle(members)
        pools.append(members)
    available = sum(map(len, pools))
    if not 1 <= num <= available:
        raise ValueError(f"--num must be between 1 and {available} (the distinct records the families hold)")
    records: list[dict] = []
    while len(records) < num:
        for members in pools:
            if members and len(records) < num:
                records.append(members.pop())
    rng.shuffle(records)
    add_reasoning(records, reasoning_share, seed)
    return records
