"""The words of the verifiable items (`training.items`): question and answer phrasings per language.

Each list's last phrasing is held out: only the ``test`` and ``heldout_language`` splits use it, so a
judge is measured on questions and answers worded unlike anything it was trained on. Placeholders:
``{a} {b}`` operands, ``{op}`` an operator sign, ``{v}`` a quantity, ``{big} {small}`` unit names,
``{list}`` a list of digits, ``{x}`` the answer.
"""

from __future__ import annotations

# task kind -> language -> phrasings (the last one is held out)
QUESTIONS: dict[str, dict[str, list[str]]] = {
    "arithmetic": {
        "th": ["{a} {op} {b} เท่ากับเท่าไร?", "จงคำนวณ {a} {op} {b}", "ผลลัพธ์ของ {a} {op} {b} คืออะไร?"],
        "bn": ["{a} {op} {b} কত?", "{a} {op} {b} হিসাব করো।", "{a} {op} {b} এর ফল কী?"],
        "en": ["What is {a} {op} {b}?", "Calculate {a} {op} {b}.", "Work out {a} {op} {b} for me."],
        "de": ["Was ist {a} {op} {b}?", "Berechne {a} {op} {b}.", "Wie viel ergibt {a} {op} {b}?"],
        "es": ["¿Cuánto es {a} {op} {b}?", "Calcula {a} {op} {b}.", "¿Qué resultado da {a} {op} {b}?"],
        "fr": ["Combien font {a} {op} {b} ?", "Calcule {a} {op} {b}.", "Quel est le résultat de {a} {op} {b} ?"],
        "it": ["Quanto fa {a} {op} {b}?", "Calcola {a} {op} {b}.", "Qual è il risultato di {a} {op} {b}?"],
        "ru": ["Сколько будет {a} {op} {b}?", "Вычисли {a} {op} {b}.", "Чему равно {a} {op} {b}?"],
        "zh": ["{a} {op} {b} 等于多少？", "请计算 {a} {op} {b}。", "{a} {op} {b} 的结果是什么？"],
        "ja": ["{a} {op} {b} はいくつですか？", "{a} {op} {b} を計算してください。", "{a} {op} {b} の答えは何ですか？"],
        "ar": ["كم يساوي {a} {op} {b}؟", "احسب {a} {op} {b}.", "ما ناتج {a} {op} {b}؟"],
        "hi": ["{a} {op} {b} कितना होता है?", "{a} {op} {b} की गणना करें।", "{a} {op} {b} का उत्तर क्या है?"],
    },
    "conversion": {
        "th": ["{v} {big} มีกี่{small}?", "แปลง {v} {big} เป็น{small}", "{v} {big} เท่ากับกี่{small}?"],
        "bn": ["{v} {big}-এ কত {small}?", "{v} {big}কে {small}-এ রূপান্তর করো।", "{v} {big} মানে কত {small}?"],
        "en": ["How many {small} are in {v} {big}?", "Convert {v} {big} to {small}.", "{v} {big} is how many {small}?"],
        "de": ["Wie viele {small} sind {v} {big}?", "Rechne {v} {big} in {small} um.", "{v} {big} sind wie viele {small}?"],
        "es": ["¿Cuántos {small} hay en {v} {big}?", "Convierte {v} {big} a {small}.", "{v} {big} son ¿cuántos {small}?"],
        "fr": ["Combien de {small} y a-t-il dans {v} {big} ?", "Convertis {v} {big} en {small}.",
               "{v} {big}, cela fait combien de {small} ?"],
        "it": ["Quanti {small} ci sono in {v} {big}?", "Converti {v} {big} in {small}.", "{v} {big} sono quanti {small}?"],
        "ru": ["Сколько {small} в {v} {big}?", "Переведи {v} {big} в {small}.", "{v} {big} — это сколько {small}?"],
        "zh": ["{v} {big}等于多少{small}？", "把 {v} {big}换算成{small}。", "{v} {big}是几{small}？"],
        "ja": ["{v} {big}は何{small}ですか？", "{v} {big}を{small}に換算してください。", "{v} {big}をすべて{small}で表すといくつですか？"],
        "ar": ["كم {small} في {v} {big}؟", "حوّل {v} {big} إلى {small}.", "{v} {big} تساوي كم {small}؟"],
        "hi": ["{v} {big} में कितने {small} होते हैं?", "{v} {big} को {small} में बदलें।", "{v} {big} कितने {small} के बराबर है?"],
    },
    "comparison_max": {
        "th": ["ระหว่าง {a} กับ {b} จำนวนใดมากกว่า?", "{a} หรือ {b} อันไหนมากกว่า?", "จาก {a} และ {b} ตัวเลขใดใหญ่กว่า?"],
        "bn": ["{a} এবং {b} এর মধ্যে কোন সংখ্যাটি বড়?", "{a} না {b}, কোনটি বড়?", "{a} ও {b} এর মধ্যে বড় সংখ্যা কোনটি?"],
        "en": ["Which number is larger: {a} or {b}?", "Which is bigger, {a} or {b}?", "Of {a} and {b}, which is greater?"],
        "de": ["Welche Zahl ist größer: {a} oder {b}?", "Was ist mehr, {a} oder {b}?", "Welche von {a} und {b} ist die größere?"],
        "es": ["¿Qué número es mayor: {a} o {b}?", "¿Cuál es más grande, {a} o {b}?", "Entre {a} y {b}, ¿cuál es mayor?"],
        "fr": ["Quel nombre est le plus grand : {a} ou {b} ?", "Lequel est plus grand, {a} ou {b} ?",
               "Entre {a} et {b}, lequel est supérieur ?"],
        "it": ["Quale numero è più grande: {a} o {b}?", "Qual è maggiore, {a} o {b}?", "Tra {a} e {b}, quale è il maggiore?"],
        "ru": ["Какое число больше: {a} или {b}?", "Что больше, {a} или {b}?", "Из чисел {a} и {b} какое большее?"],
        "zh": ["{a} 和 {b} 哪个数更大？", "{a} 与 {b} 相比，哪个大？", "在 {a} 和 {b} 中，较大的是哪个？"],
        "ja": ["{a} と {b} ではどちらが大きいですか？", "{a} と {b} のうち大きいほうは？", "{a} と {b} を比べると、大きいのはどちら？"],
        "ar": ["أي العددين أكبر: {a} أم {b}؟", "أيهما أكبر، {a} أم {b}؟", "من بين {a} و {b}، ما العدد الأكبر؟"],
        "hi": ["{a} और {b} में से कौन सी संख्या बड़ी है?", "{a} या {b}, कौन बड़ा है?", "{a} और {b} में बड़ी संख्या कौन सी है?"],
    },
    "comparison_min": {
        "th": ["ระหว่าง {a} กับ {b} จำนวนใดน้อยกว่า?", "{a} หรือ {b} อันไหนน้อยกว่า?", "จาก {a} และ {b} ตัวเลขใดเล็กกว่า?"],
        "bn": ["{a} এবং {b} এর মধ্যে কোন সংখ্যাটি ছোট?", "{a} না {b}, কোনটি ছোট?", "{a} ও {b} এর মধ্যে ছোট সংখ্যা কোনটি?"],
        "en": ["Which number is smaller: {a} or {b}?", "Which is less, {a} or {b}?", "Of {a} and {b}, which is lower?"],
        "de": ["Welche Zahl ist kleiner: {a} oder {b}?", "Was ist weniger, {a} oder {b}?", "Welche von {a} und {b} ist die kleinere?"],
        "es": ["¿Qué número es menor: {a} o {b}?", "¿Cuál es más pequeño, {a} o {b}?", "Entre {a} y {b}, ¿cuál es menor?"],
        "fr": ["Quel nombre est le plus petit : {a} ou {b} ?", "Lequel est plus petit, {a} ou {b} ?",
               "Entre {a} et {b}, lequel est inférieur ?"],
        "it": ["Quale numero è più piccolo: {a} o {b}?", "Qual è minore, {a} o {b}?", "Tra {a} e {b}, quale è il minore?"],
        "ru": ["Какое число меньше: {a} или {b}?", "Что меньше, {a} или {b}?", "Из чисел {a} и {b} какое меньшее?"],
        "zh": ["{a} 和 {b} 哪个数更小？", "{a} 与 {b} 相比，哪个小？", "在 {a} 和 {b} 中，较小的是哪个？"],
        "ja": ["{a} と {b} ではどちらが小さいですか？", "{a} と {b} のうち小さいほうは？", "{a} と {b} を比べると、小さいのはどちら？"],
        "ar": ["أي العددين أصغر: {a} أم {b}؟", "أيهما أصغر، {a} أم {b}؟", "من بين {a} و {b}، ما العدد الأصغر؟"],
        "hi": ["{a} और {b} में से कौन सी संख्या छोटी है?", "{a} या {b}, कौन छोटा है?", "{a} और {b} में छोटी संख्या कौन सी है?"],
    },
    "counting": {
        "th": ["รายการนี้มีตัวเลขกี่ตัว: {list}?", "จงนับตัวเลขในรายการ {list}", "นี่คือรายการ: {list} มีทั้งหมดกี่รายการ?"],
        "bn": ["এই তালিকায় কয়টি সংখ্যা আছে: {list}?", "তালিকা {list} এর সংখ্যাগুলো গোনো।", "এখানে একটি তালিকা: {list}। এতে কয়টি উপাদান আছে?"],
        "en": ["How many numbers are in this list: {list}?", "Count the numbers in the list {list}.",
               "Here is a list: {list}. How many entries does it have?"],
        "de": ["Wie viele Zahlen stehen in dieser Liste: {list}?", "Zähle die Zahlen in der Liste {list}.",
               "Hier ist eine Liste: {list}. Wie viele Einträge hat sie?"],
        "es": ["¿Cuántos números hay en esta lista: {list}?", "Cuenta los números de la lista {list}.",
               "Aquí hay una lista: {list}. ¿Cuántos elementos tiene?"],
        "fr": ["Combien de nombres y a-t-il dans cette liste : {list} ?", "Compte les nombres de la liste {list}.",
               "Voici une liste : {list}. Combien d'éléments contient-elle ?"],
        "it": ["Quanti numeri ci sono in questa lista: {list}?", "Conta i numeri nella lista {list}.",
               "Ecco una lista: {list}. Quanti elementi contiene?"],
        "ru": ["Сколько чисел в этом списке: {list}?", "Посчитай числа в списке {list}.",
               "Вот список: {list}. Сколько в нём элементов?"],
        "zh": ["这个列表里有几个数：{list}？", "数一数列表 {list} 中的数字。", "这里有一个列表：{list}。它有多少项？"],
        "ja": ["このリストには数がいくつありますか：{list}？", "リスト {list} の数を数えてください。",
               "次のリストがあります：{list}。項目はいくつですか？"],
        "ar": ["كم عددًا في هذه القائمة: {list}؟", "عُدّ الأعداد في القائمة {list}.", "هذه قائمة: {list}. كم عنصرًا فيها؟"],
        "hi": ["इस सूची में कितनी संख्याएँ हैं: {list}?", "सूची {list} में संख्याएँ गिनें।",
               "यह एक सूची है: {list}। इसमें कितनी प्रविष्टियाँ हैं?"],
    },
}

# unit pairs of the conversion task: (name, factor) -> language -> (big unit, small unit)
UNITS: dict[tuple[str, int], dict[str, tuple[str, str]]] = {
    ("m-cm", 100): {
        "th": ("เมตร", "เซนติเมตร"), "bn": ("মিটার", "সেন্টিমিটার"),
        "en": ("meters", "centimeters"), "de": ("Meter", "Zentimeter"), "es": ("metros", "centímetros"),
        "fr": ("mètres", "centimètres"), "it": ("metri", "centimetri"), "ru": ("метрах", "сантиметров"),
        "zh": ("米", "厘米"), "ja": ("メートル", "センチメートル"), "ar": ("متر", "سنتيمتر"), "hi": ("मीटर", "सेंटीमीटर"),
    },
    ("kg-g", 1000): {
        "th": ("กิโลกรัม", "กรัม"), "bn": ("কিলোগ্রাম", "গ্রাম"),
        "en": ("kilograms", "grams"), "de": ("Kilogramm", "Gramm"), "es": ("kilogramos", "gramos"),
        "fr": ("kilogrammes", "grammes"), "it": ("chilogrammi", "grammi"), "ru": ("килограммах", "граммов"),
        "zh": ("千克", "克"), "ja": ("キログラム", "グラム"), "ar": ("كيلوغرام", "غرام"), "hi": ("किलोग्राम", "ग्राम"),
    },
    ("h-min", 60): {
        "th": ("ชั่วโมง", "นาที"), "bn": ("ঘণ্টা", "মিনিট"),
        "en": ("hours", "minutes"), "de": ("Stunden", "Minuten"), "es": ("horas", "minutos"),
        "fr": ("heures", "minutes"), "it": ("ore", "minuti"), "ru": ("часах", "минут"),
        "zh": ("小时", "分钟"), "ja": ("時間", "分"), "ar": ("ساعات", "دقيقة"), "hi": ("घंटे", "मिनट"),
    },
}

# language -> answer phrasings (the last one is held out)
ANSWERS: dict[str, list[str]] = {
    "th": ["{x}", "คำตอบคือ {x}", "ได้ผลลัพธ์ {x}"],
    "bn": ["{x}", "উত্তর হলো {x}।", "ফলাফল {x} হয়।"],
    "en": ["{x}", "The answer is {x}.", "It comes to {x}."],
    "de": ["{x}", "Die Antwort ist {x}.", "Das ergibt {x}."],
    "es": ["{x}", "La respuesta es {x}.", "El resultado es {x}."],
    "fr": ["{x}", "La réponse est {x}.", "Cela fait {x}."],
    "it": ["{x}", "La risposta è {x}.", "Il risultato è {x}."],
    "ru": ["{x}", "Ответ: {x}.", "Получается {x}."],
    "zh": ["{x}", "答案是{x}。", "结果为{x}。"],
    "ja": ["{x}", "答えは{x}です。", "結果は{x}になります。"],
    "ar": ["{x}", "الجواب هو {x}.", "الناتج {x}."],
    "hi": ["{x}", "उत्तर {x} है।", "परिणाम {x} आता है।"],
}

# Responses that state no answer at all: a binary judge must call them false. The last three are the
# probes that fool LLM judges (held out: only the probe split uses them).
NON_ANSWERS = ["I'm not sure.", "Let me think about it.", "Answer:", "See above.", "Good question!",
               "Thought process:", ":", "Let's solve this step by step."]
HELD_OUT_NON_ANSWERS = 3

# The reasoning the teacher writes, in the language a strategy thinks in: language -> phrases
TRACE_WORDS: dict[str, dict[str, str]] = {
    "th": {"response": "คำตอบ", "none": "ไม่ได้ให้ตัวเลข",
           "right": "ถูกต้อง", "wrong": "ผิด", "reference": "คำตอบอ้างอิงคือ {x}"},
    "bn": {"response": "উত্তর", "none": "কোনো সংখ্যা দেয় না",
           "right": "সঠিক", "wrong": "ভুল", "reference": "রেফারেন্স উত্তর {x}।"},
    "en": {"response": "The response", "none": "no number",
           "right": "correct", "wrong": "wrong", "reference": "The reference is {x}."},
    "de": {"response": "Die Antwort", "none": "nennt keine Zahl",
           "right": "richtig", "wrong": "falsch", "reference": "Die Referenz ist {x}."},
    "es": {"response": "La respuesta", "none": "no da ningún número",
           "right": "correcto", "wrong": "incorrecto", "reference": "La referencia es {x}."},
    "fr": {"response": "La réponse", "none": "ne donne aucun nombre",
           "right": "correct", "wrong": "faux", "reference": "La référence est {x}."},
    "it": {"response": "La risposta", "none": "non dà alcun numero",
           "right": "corretto", "wrong": "sbagliato", "reference": "Il riferimento è {x}."},
    "ru": {"response": "Ответ", "none": "не называет числа",
           "right": "верно", "wrong": "неверно", "reference": "Эталон: {x}."},
    "zh": {"response": "回答", "none": "没有给出数字",
           "right": "正确", "wrong": "错误", "reference": "参考答案是 {x}。"},
    "ja": {"response": "回答", "none": "は数を答えていない",
           "right": "正しい", "wrong": "誤り", "reference": "参考解答は {x} です。"},
    "ar": {"response": "الإجابة", "none": "لا يذكر أي عدد",
           "right": "صحيح", "wrong": "خطأ", "reference": "المرجع هو {x}."},
    "hi": {"response": "उत्तर", "none": "कोई संख्या नहीं देता",
           "right": "सही", "wrong": "गलत", "reference": "संदर्भ उत्तर {x} है।"},
}
