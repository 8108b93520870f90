"""Red-team review of issue 11 part 1: realistic messages the detector misses or
false-alarms on. Each case is a message a person leaving a scene (or a relative)
would plausibly write; none is in the corpus."""

from __future__ import annotations

import pytest

from handlers.safety import Danger, detect

MISSES = [
    # German
    ("de", "ich hab mir heute wieder die arme aufgeritzt", Danger.SELF_HARM),
    ("de", "ich hab schon einen strick im keller", Danger.SUICIDE),
    ("de", "keiner würde mich vermissen wenn ich weg bin", Danger.SUICIDE),
    ("de", "ich sehe keinen sinn mehr im leben", Danger.SUICIDE),
    ("de", "ich will nich mehr lebn", Danger.SUICIDE),
    ("de", "I C H   W I L L   S T E R B E N", Danger.SUICIDE),
    ("de", "ich hab zu viel genommen, mir ist schwindlig", Danger.MEDICAL),
    ("de", "mein bruder plant einen anschlag auf die moschee", Danger.OTHERS),
    ("de", "mein sohn will leute erschießen", Danger.OTHERS),
    ("de", "er sagt er will die flüchtlinge abfackeln", Danger.OTHERS),
    ("de", "der hat eine waffe und will am freitag losziehen", Danger.OTHERS),
    ("de", "ich habe angst dass sie meiner tochter was antun", Danger.THREAT),
    ("de", "die haben mein auto angezündet", Danger.THREAT),
    # English
    ("en", "they are outside my house right now", Danger.THREAT),
    ("en", "he has a gun and says he'll shoot them at the rally", Danger.OTHERS),
    ("en", "i'm gonna kms", Danger.SUICIDE),
    ("en", "i want to disappear forever", Danger.SUICIDE),
    # Russian
    ("ru", "мне сказали что мне конец", Danger.THREAT),
    ("ru", "он собирается устроить стрельбу в школе", Danger.OTHERS),
    ("ru", "нет сил жить", Danger.SUICIDE),
    # Arabic
    ("ar", "ابتلعت الكثير من الحبوب", Danger.MEDICAL),
]

FALSE_ALARMS = [
    # the very thing people leaving a scene write
    ("de", "ich will mit der szene schluss machen"),
    ("de", "ich will mein altes leben beenden und neu anfangen"),
    ("en", "i want to end my old life and start over"),
    # everyday idioms
    ("de", "das bringt mich noch um, diese bürokratie"),
    ("de", "ich hab den termin verpasst, ich bin so dumm, ich könnte mich schlagen"),
    ("en", "i'm dead tired"),
    ("tr", "bu iş beni öldürüyor"),
]

# Found by the red-team review after the corpus test passed. All are handled now by
# general entries (with similar, different lines in the dev corpus), not by these sentences.


@pytest.mark.parametrize(("lang", "text", "danger"), MISSES, ids=[m[1][:40] for m in MISSES])
def test_attack_detect_misses(lang: str, text: str, danger: Danger) -> None:
    assert detect(text) is not None, f"{lang}: missed {danger.value}: {text!r}"


@pytest.mark.parametrize(("lang", "text"), FALSE_ALARMS, ids=[m[1][:40] for m in FALSE_ALARMS])
def test_attack_detect_false_alarms(lang: str, text: str) -> None:
    assert detect(text) is None, f"{lang}: false alarm {detect(text)}: {text!r}"


# Second round: what people leaving a scene write after threats, and confessions.
MISSES_2 = [
    ("de", "die haben geschrieben verräter werden aufgehängt"),
    ("de", "mein ex-kamerad hat gesagt er sticht mich ab wenn er mich sieht"),
    ("de", "ich hab mir ein messer gekauft und weiß nicht wofür"),
    ("de", "ich hab mich heute verabschiedet von allen"),
    ("de", "ich bin allen nur eine last"),
    ("de", "mein mann hat waffen im keller und redet vom tag x"),
    ("de", "er will es den ausländern heimzahlen"),
    ("de", "die kameraden planen was gegen das flüchtlingsheim"),
    ("de", "ich blute stark"),
    ("de", "ich hab mich geschnitten und es hört nicht auf zu bluten"),
    ("de", "die haben gesagt sie kommen heute nacht"),
    ("de", "wenn ich rede bin ich tot"),
    ("de", "ich werde erpresst"),
    ("en", "there's a car outside my flat every night since i left"),
    ("en", "they wrote that traitors get hanged"),
    ("en", "i'm a burden to everyone"),
    ("en", "i took sleeping pills with vodka"),
    ("en", "i'm bleeding a lot"),
    ("ru", "они выложили мой адрес в телеграме"),
    ("ru", "написали что предателей вешают"),
    ("ru", "я всем только обуза"),
    ("ru", "я напилась и выпила снотворное"),
    ("ru", "у меня сильно идёт кровь"),
    ("ru", "если я заговорю мне конец"),
    ("ru", "хочу чтобы всё закончилось навсегда"),
    ("ru", "он купил ружьё и говорит что отомстит"),
    ("uk", "вони виклали мою адресу в телеграмі"),
    ("uk", "я всім лише тягар"),
    ("uk", "у мене сильно йде кров"),
    ("tr", "adresimi telegramda paylaştılar"),
    ("tr", "hainler asılır diye yazdılar"),
    ("tr", "herkese yük oluyorum"),
    ("tr", "uyku haplarını alkolle içtim"),
    ("tr", "çok kan kaybediyorum"),
    ("tr", "konuşursam ölürüm"),
    ("tr", "artık uyanmak istemiyorum"),
    ("ar", "منذ أن تركتهم تقف سيارة أمام بيتي كل ليلة"),
    ("ar", "نشروا عنواني على تيليغرام"),
    ("ar", "كتبوا أن الخونة يُشنقون"),
    ("ar", "أنا عبء على الجميع"),
    ("ar", "أنزف بشدة"),
    ("ar", "إذا تكلمت سأموت"),
    ("ar", "لا أريد أن أستيقظ بعد الآن"),
]
FALSE_ALARMS_2 = [
    # a former perpetrator's confession is the daily bread of exit work
    ("de", "ich hab früher ausländer angegriffen und schäme mich"),
    ("de", "wir haben damals flüchtlingsheime angegriffen, das verfolgt mich"),
]


@pytest.mark.parametrize(("lang", "text"), MISSES_2, ids=[m[1][:40] for m in MISSES_2])
def test_attack_detect_misses_2(lang: str, text: str) -> None:
    assert detect(text) is not None, f"{lang}: missed: {text!r}"


@pytest.mark.parametrize(("lang", "text"), FALSE_ALARMS_2, ids=[m[1][:40] for m in FALSE_ALARMS_2])
def test_attack_detect_false_alarms_2(lang: str, text: str) -> None:
    assert detect(text) is None, f"{lang}: false alarm {detect(text)}: {text!r}"


# Third round: the past (a relative's suicide years ago, one's own violence back then)
# and a joking threat with laughter. Past events are what exit counselling is about.
FALSE_ALARMS_3 = [
    ("de", "wir haben früher leute verprügelt"),
    ("de", "mein onkel hat sich vor jahren umgebracht, das belastet mich noch"),
    ("en", "i used to beat people up for the group"),
    ("en", "my dad killed himself years ago"),
    ("ar", "سأقتلك إذا تأخرت هههه"),
]


@pytest.mark.parametrize(("lang", "text"), FALSE_ALARMS_3, ids=[m[1][:40] for m in FALSE_ALARMS_3])
def test_attack_detect_false_alarms_3(lang: str, text: str) -> None:
    assert detect(text) is None, f"{lang}: false alarm {detect(text)}: {text!r}"
