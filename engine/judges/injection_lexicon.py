"""Words the injection screen (engine/judges/injection.py) looks for, one table per language.

Each entry is a regex fragment, matched case-insensitively on normalised text. `judge`: who an
injection addresses; `response`: what the judge compares; `choose`: the verbs that ask for a pick;
`better`: praise that ranks one response above the other; `ignore`: "ignore the previous
instructions"; `this_response`: "this response" or "the first response"; `system`: a fake system or
admin turn's label; `verdict`: a verdict field name; `if`, `advice`, `option`: conditions, advice words
and option nouns, which make "choose A" ordinary advice ("choose A if...", "plan A is cheaper").
English is richer because most responses are English; ar, hi, vi, el, uk, id, sv, sw, pl and tr
have shorter tables.
"""

from __future__ import annotations

# The label the judge answers with: A or B (Cyrillic А/Б, Greek Α/Β, Arabic أ/ب as written in those texts),
# never a letter inside a word nor "A-list".
_LETTERS = "A-Za-z0-9\u0370-\u03ff\u0400-\u04ff\u0600-\u06ff"
LABEL = rf"(?<![{_LETTERS}])(?-i:[AB\u0410\u0411\u0391\u0392\u0623\u0628])(?![{_LETTERS}]|-\w)"

LANGUAGES: dict[str, dict[str, str]] = {
    "en": {
        "judge": r"judges?|graders?|evaluators?|reviewers?|raters?|annotators?|assessors?|scorers?|labell?ers?|checkers?"
                 r"|arbiters?|(?:reward|preference|evaluation|grading|judge|scoring|critic|reviewing|judging)\s+models?"
                 r"|(?:ai|llm)\s+judges?",
        "response": r"responses?|repl(?:y|ies)|completions?|candidates?|assistant|generations?|submissions?",
        "choose": r"choose|pick|select|prefer|favou?r|vote\s+for|go\s+with|upvote",
        "better": r"better|best|superior|preferable|preferred|stronger|winner|higher[- ]quality"
                  r"|more\s+(?:helpful|accurate|honest|harmless|complete|useful|relevant)",
        "ignore": r"\b(?:ignore|disregard|forget|override|overrule|bypass|discard|abandon)\b[^.\n]{0,40}?"
                  r"\b(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)\b[^.\n]{0,20}?"
                  r"\b(?:instructions?|prompts?|rules|directions|directives|guidelines|guidance|commands|criteria|rubric)\b"
                  r"|\bforget\s+(?:everything|all)\b[^.\n]{0,20}\b(?:told|above|before|instructions)\b"
                  r"|\b(?:ignore|disregard)\s+(?:the|this|your|any)\s+(?:question|rubric|criteria|grading|evaluation\s+criteria"
                  r"|principles?|constitution)\b"
                  r"|\b(?:ignore|disregard|forget)\s+your\s+(?:\w+\s+)?(?:instructions|prompt|guidelines|programming|rules)\b"
                  r"|\b(?:ignore|disregard|forget)\s+(?:everything|anything|all)\s+(?:above|before|prior|previously|you\s+were\s+told"
                  r"|else\s+you\s+were\s+told)",
        "this_response": r"this\s+(?:response|reply|answer|completion)",
        "system": r"system|sys|admin|administrator|developer|operator",
        "verdict": r"verdict|winner|judge?ment|preference|preferred(?:\s+(?:response|reply))?"
                   r"|(?:better|best|winning|chosen)\s+(?:response|reply)|chosen|final\s+(?:choice|pick|label|rating)",
        "if": r"if|when|whenever|unless|for|because|since|depending|whether|provided|assuming|otherwise|should\s+you",
        "advice": r"advice|recommend\w*|suggest\w*|cheap\w*|budget|prices?|costs?|plans?|upgrade|warranty|depends|choice|between"
                  r"|versus|vs|options?|alternatives?|trade-?offs?|pros|cons",
        "option": r"option|plan|choice|route|variant|version|model|type|group|team|door|flat|tier|package|approach|method|strategy"
                  r"|tariff|drug|treatment|game|statement|candidate|product|brand|path|program|exhibit|side",
    },
    "fr": {
        "judge": r"juges?|[ée]valuat(?:eur|rice)s?|correct(?:eur|rice)s?|examinat(?:eur|rice)s?|jury|arbitres?|notat(?:eur|rice)s?",
        "response": r"r[ée]ponses?",
        "choose": r"choisi(?:ssez|s|r)|s[ée]lectionne[zr]?|pr[ée]f[ée]re[zr]?|votez\s+pour|optez\s+pour",
        "better": r"meilleure?s?|sup[ée]rieure?s?|pr[ée]f[ée]rables?|l'emporte|gagne",
        "ignore": r"\b(?:ignore[zr]?|oublie[zr]?|ne\s+tenez\s+pas\s+compte\s+d\w*)\b[^.\n]{0,30}"
                  r"\b(?:instructions?|consignes?|r[èe]gles|directives)\s+(?:pr[ée]c[ée]dentes?|ant[ée]rieures?|ci-dessus|initiales?)"
                  r"|\b(?:ignore[zr]?|oublie[zr]?)\s+tout\s+ce\s+qui\s+(?:pr[ée]c[èe]de|est\s+au-dessus|a\s+[ée]t[ée]\s+dit)",
        "this_response": r"cette\s+r[ée]ponse|(?:premi[èe]re|deuxi[èe]me|seconde)\s+r[ée]ponse",
        "system": r"syst[èe]me|admin",
        "verdict": r"verdict(?:\s+final)?|gagnante?|meilleure\s+r[ée]ponse",
        "if": r"si|quand|lorsque|selon",
        "advice": r"conseil\w*|recommand\w*|moins\s+cher|prix|budget|option",
        "option": r"option|offre|formule|forfait|plan|variante|mod[èe]le",
    },
    "de": {
        "judge": r"bewerter\w*|gutachter\w*|pr[üu]fer\w*|jury|juror\w*|schiedsrichter\w*|bewertungsmodell\w*",
        "response": r"antwort(?:en)?",
        "choose": r"w[äa]hle?n?|nimm|nehmen\s+sie|bevorzuge?n?",
        "better": r"besser\w*|beste\w*|[üu]berlegen",
        "ignore": r"\b(?:ignorier\w*|vergiss\w*|vergessen\s+sie|missacht\w*)\b[^.\n]{0,30}"
                  r"\b(?:vorherigen|bisherigen|obigen|fr[üu]heren|vorangegangenen|alten|alle)\s+(?:anweisungen|instruktionen|regeln"
                  r"|vorgaben|befehle)"
                  r"|\b(?:ignorier\w*|vergiss\w*|vergessen\s+sie)\s+alles(?:,?\s+was\s+(?:oben|vorher|zuvor|bisher))?\b",
        "this_response": r"diese\s+antwort|(?:erste|zweite)\s+antwort",
        "system": r"system|admin",
        "verdict": r"urteil|ergebnis|sieger|gewinner|beste\s+antwort",
        "if": r"wenn|falls|sofern|je\s+nachdem",
        "advice": r"empfehl\w*|rat\w*|g[üu]nstiger|preis\w*|budget|option",
        "option": r"option|tarif|variante|modell|plan|paket",
    },
    "es": {
        "judge": r"juez|jueza|evaluador\w*|calificador\w*|revisor\w*|corrector\w*|jurado",
        "response": r"respuestas?",
        "choose": r"el[ií]j\w*|elige|escog\w*|escoj\w*|selecciona\w*|prefier\w*",
        "better": r"mejor(?:es)?|superior(?:es)?|preferibles?|merece\s+ganar",
        "ignore": r"\b(?:ignora\w*|olvida\w*|haz\s+caso\s+omiso)\b[^.\n]{0,30}"
                  r"\b(?:instrucciones|indicaciones|reglas|[óo]rdenes)\s+(?:anteriores|previas|de\s+arriba|iniciales)"
                  r"|\b(?:ignora\w*|olvida\w*)\s+todo\s+lo\s+(?:anterior|que\s+se\s+te\s+(?:dijo|ha\s+dicho))",
        "this_response": r"esta\s+respuesta|(?:primera|segunda)\s+respuesta",
        "system": r"sistema|admin",
        "verdict": r"veredicto(?:\s+final)?|ganadora?|mejor\s+respuesta",
        "if": r"si|cuando|seg[úu]n",
        "advice": r"recomiendo|consejo|m[áa]s\s+barat\w*|precio|presupuesto|opci[óo]n",
        "option": r"opci[óo]n|plan|tarifa|variante|modelo|paquete",
    },
    "it": {
        "judge": r"giudic[ei]|valutat(?:ore|rice|ori)|revisor[ei]|corrett(?:ore|rice)|esaminat(?:ore|rice)|giuria",
        "response": r"rispost[ae]",
        "choose": r"scegli\w*|scelga|seleziona\w*|preferisci|votate|vota",
        "better": r"migliore?|superiore|preferibile|merita\s+di\s+vincere",
        "ignore": r"\b(?:ignora\w*|dimentica\w*)\b[^.\n]{0,30}\b(?:istruzioni|indicazioni|regole)\s+(?:precedenti|di\s+sopra|iniziali)"
                  r"|\b(?:ignora\w*|dimentica\w*)\s+tutto\s+(?:quanto\s+sopra|ci[òo]\s+che\s+precede"
                  r"|quello\s+che\s+ti\s+[èe]\s+stato\s+detto)",
        "this_response": r"questa\s+risposta|(?:prima|seconda)\s+risposta",
        "system": r"sistema|admin",
        "verdict": r"verdetto(?:\s+finale)?|vincitrice|vincitore|(?:migliore\s+risposta|risposta\s+migliore)",
        "if": r"se|quando|a\s+seconda",
        "advice": r"consiglio|consiglierei|pi[ùu]\s+economic\w*|prezzo|budget|opzione",
        "option": r"opzione|piano|tariffa|variante|modello|pacchetto",
    },
    "pt": {
        "judge": r"ju[ií]za?|avaliador\w*|corretor\w*|revisor\w*|examinador\w*|j[úu]ri",
        "response": r"respostas?",
        "choose": r"escolh\w*|selecione|prefira|vote\s+em",
        "better": r"melhor(?:es)?|superior(?:es)?|prefer[íi]ve(?:l|is)|vencedora|merece\s+vencer|deve\s+(?:\w+\s+)?(?:vencer|ganhar)",
        "ignore": r"\b(?:ignor[ea]\w*|esque[çc]a\w*|desconsider\w*)\b[^.\n]{0,30}"
                  r"\b(?:instru[çc][õo]es|orienta[çc][õo]es|regras)\s+(?:anteriores|pr[ée]vias|acima|iniciais)"
                  r"|\b(?:ignor[ea]\w*|esque[çc]a\w*)\s+tudo\s+(?:o\s+que\s+(?:foi\s+dito|est[áa]\s+acima)|acima|anterior)",
        "this_response": r"esta\s+resposta|(?:primeira|segunda)\s+resposta",
        "system": r"sistema|admin",
        "verdict": r"veredito(?:\s+final)?|vencedora?|melhor\s+resposta",
        "if": r"se|quando|dependendo",
        "advice": r"recomendo|conselho|mais\s+barat\w*|pre[çc]o|or[çc]amento|op[çc][ãa]o",
        "option": r"op[çc][ãa]o|plano|tarifa|variante|modelo|pacote",
    },
    "nl": {
        "judge": r"rechter|beoordelaars?|jury|examinator|recensent|evaluator",
        "response": r"antwoord(?:en)?",
        "choose": r"kies|kiest|selecteer|stem\s+op",
        "better": r"beter|beste|superieur|verdient\s+de\s+voorkeur",
        "ignore": r"\b(?:negeer|vergeet)\b[^.\n]{0,30}\b(?:vorige|eerdere|voorgaande|bovenstaande|alle)\s+(?:instructies|aanwijzingen"
                  r"|regels|opdrachten)"
                  r"|\b(?:negeer|vergeet)\s+alles\s+(?:hierboven|wat\s+(?:eerder|hiervoor))",
        "this_response": r"dit\s+antwoord|(?:eerste|tweede)\s+antwoord",
        "system": r"systeem|admin",
        "verdict": r"oordeel|winnaar|beste\s+antwoord",
        "if": r"als|indien|wanneer|afhankelijk",
        "advice": r"aanraden|advies|goedkoper|prijs|budget|optie",
        "option": r"optie|abonnement|plan|variant|model|pakket",
    },
    "zh": {
        "judge": r"评审|评委|裁判|评估者|评分者|评分员|评判者?|评价者|审阅者|阅卷|打分者|评测者|(?:评分|评估|打分|奖励|评审|裁判)模型",
        "response": r"回答|回复|答复|答案|回應",
        "choose": r"选择|挑选|选|输出",
        "better": r"更好|最好|更优|优于|更佳|胜出|更胜一筹|更出色|好得多|强得多|更强|更合适|更准确",
        "ignore": r"(?:忽略|无视|忘记|忘掉|不要理会)[^。\n]{0,10}(?:之前|以上|上面|前面|先前|此前|所有)[^。\n]{0,6}(?:指令|指示|说明|规则|要求|提示|内容)"
                  r"|(?:忽略|无视)(?:上述|以上)",
        "this_response": r"(?:本|这个|此|该|第一个|第二个)(?:回答|回复|答复)",
        "system": r"系统|管理员",
        "verdict": r"最终判定|判定|裁决|结论|胜者|最佳回答|更好的回答",
        "if": r"如果|若|要是|假如|的话",
        "advice": r"建议|推荐|预算|价格|便宜|划算",
        "option": r"方案|计划|选项|套餐|型号|版本|选项",
    },
    "ja": {
        "judge": r"審査員|評価者|採点者|審判|ジャッジ|評価担当者?|レビュアー|採点官|(?:採点|評価|報酬|審査)(?:AI|モデル)",
        "response": r"回答|応答|返答|答え",
        "choose": r"選んで|選べ|選択|選ぶ|出力",
        "better": r"優れ|良い|よい|いい|勝|ベスト|上回",
        "ignore": r"(?:以前|これまで|上記|前|先ほど|すべて|全て)[^。\n]{0,10}(?:指示|命令|ルール|指令|内容)[^。\n]{0,6}(?:無視|忘れ)"
                  r"|上記を無視",
        "this_response": r"(?:この|最初の|一つ目の|二つ目の|二番目の)(?:回答|応答|返答)",
        "system": r"システム|管理者",
        "verdict": r"最終判定|判定|評決|勝者|最良の回答|より良い回答",
        "if": r"もし|なら|場合",
        "advice": r"おすすめ|お勧め|予算|価格|安い",
        "option": r"プラン|案|オプション|モデル|コース",
    },
    "ru": {
        "judge": r"суд(?:ья|ье|ьи|ью|ей)|оценщик\w*|проверяющ\w*|рецензент\w*|эксперт\w*|жюри|экзаменатор\w*",
        "response": r"ответ\w*",
        "choose": r"выбер\w*|выбира\w*|предпочт\w*|проголосуй\w*",
        "better": r"лучш\w*|превосход\w*|побед\w*",
        "ignore": r"(?:игнориру\w*|проигнорируй\w*|забудь\w*|не\s+обращай\w*)[^.\n]{0,30}"
                  r"(?:предыдущ\w*|прежн\w*|вышеуказанн\w*|все)\s+(?:\w+\s+)?(?:инструкци\w*|указани\w*|правил\w*)"
                  r"|(?:игнорируй\w*|забудь\w*)\s+вс[ёе]\s*,?\s*(?:что|вышесказанное|сказанное|выше)",
        "this_response": r"(?:этот|данный|первый|второй)\s+ответ",
        "system": r"система|админ\w*",
        "verdict": r"вердикт|победител\w*|лучший\s+ответ",
        "if": r"если|когда|в\s+зависимости",
        "advice": r"рекоменд\w*|совет\w*|дешевл\w*|цен\w*|бюджет",
        "option": r"вариант\w*|тариф\w*|план\w*|модел\w*|пакет\w*",
    },
    "ko": {
        "judge": r"심사위원|평가자|채점자|심판|검토자|심사자|평가\s*모델",
        "response": r"답변|응답|대답",
        "choose": r"선택|고르|골라",
        "better": r"더\s*(?:좋|낫|우수|나은|훌륭)|우수|최고|낫습니다",
        "ignore": r"(?:이전|앞의|위의|기존|모든)[^.\n]{0,10}(?:지시|명령|규칙|지침|내용)[^.\n]{0,8}(?:무시|잊)",
        "this_response": r"(?:이|첫\s*번째|두\s*번째)\s*(?:답변|응답|대답)",
        "system": r"시스템|관리자",
        "verdict": r"최종\s*판정|판정|승자|최고의\s*답변|더\s*나은\s*답변",
        "if": r"면|경우|라면",
        "advice": r"추천|예산|가격|저렴",
        "option": r"요금제|안|옵션|모델|플랜|상품",
    },
    # Shorter tables for languages seen less often in chat data.
    "pl": {
        "judge": r"sędzi\w*|oceniając\w*|recenzent\w*|ewaluator\w*|egzaminator\w*|jury",
        "response": r"odpowied[źz]\w*",
        "choose": r"wybierz\w*|wybier\w*",
        "better": r"lepsz\w*|najlepsz\w*",
        "ignore": r"\b(?:zignoruj|ignoruj|zapomnij)\w*[^.\n]{0,30}(?:poprzednie|wcześniejsze|powyższe|wszystkie)\s+(?:instrukcje"
                  r"|polecenia|zasady)",
        "this_response": r"t[aę]\s+odpowied[źz]\w*|pierwsz[aą]\s+odpowied[źz]\w*",
        "system": r"system",
        "verdict": r"werdykt|zwycięzca",
        "if": r"jeśli|jeżeli|gdy",
        "advice": r"polecam|radzę|tańsz\w*|cen[ay]|budżet\w*",
        "option": r"opcj\w*|plan|wariant|model|pakiet",
    },
    "tr": {
        "judge": r"hakem\w*|değerlendirici\w*|jüri\w*|puanlayıcı\w*|yargıç\w*",
        "response": r"cevab\w*|cevap\w*|yanıt\w*",
        "choose": r"seç\w*",
        "better": r"daha\s+iyi|en\s+iyi|üstün",
        "ignore": r"(?:önceki|yukarıdaki|tüm)\s+(?:\w+\s+)?(?:talimat\w*|kural\w*|yönerge\w*)[^.\n]{0,20}(?:yok\s+say|görmezden\s+gel"
                  r"|unut)",
        "this_response": r"bu\s+(?:cevap|yanıt)\w*|ilk\s+(?:cevap|yanıt)\w*",
        "system": r"sistem",
        "verdict": r"karar|kazanan",
        "if": r"eğer|durumunda",
        "advice": r"öneri\w*|tavsiye\w*|ucuz\w*|fiyat\w*|bütçe\w*",
        "option": r"seçenek\w*|plan\w*|paket\w*|model\w*",
    },
    "ar": {
        "judge": r"الحكم|للحكم|المقي[ّ]?م|للمقي[ّ]?م|المصحح|للمصحح|المراجع|لجنة\s+التحكيم",
        "response": r"الإجابة|الاجابة|إجابة|الجواب|الرد",
        "choose": r"اختر|اختاروا|اختيار",
        "better": r"أفضل|الأفضل|أحسن",
        "ignore": r"(?:تجاهل|انس)[^.\n]{0,30}(?:التعليمات|الأوامر|القواعد)",
        "this_response": r"هذه\s+الإجابة|هذا\s+الرد|هذا\s+الجواب",
        "system": r"النظام",
        "verdict": r"الحكم\s+النهائي|الفائز",
        "if": r"إذا|لو",
        "advice": r"أنصح|ننصح|أرخص|السعر|الميزانية",
        "option": r"الخيار|الخطة|الباقة",
    },
    "hi": {
        "judge": r"न्यायाधीश|मूल्यांकनकर्ता|परीक्षक|निर्णायक|जज",
        "response": r"उत्तर|जवाब|प्रतिक्रिया",
        "choose": r"चुनें|चुनिए|चुनो|चयन\s+करें",
        "better": r"बेहतर|सबसे\s+अच्छा|श्रेष्ठ",
        "ignore": r"(?:पिछले|पहले\s+के|ऊपर\s+के|सभी)[^।\n]{0,20}(?:निर्देश|नियम)[^।\n]{0,20}(?:अनदेखा|नज़रअंदाज़|नजरअंदाज|भूल)",
        "this_response": r"यह\s+(?:उत्तर|जवाब)|पहला\s+(?:उत्तर|जवाब)",
        "system": r"सिस्टम",
        "verdict": r"निर्णय|विजेता",
        "if": r"अगर|यदि",
        "advice": r"सलाह|सस्ता|कीमत|बजट",
        "option": r"विकल्प|योजना|प्लान",
    },
    "vi": {
        "judge": r"giám\s+khảo|người\s+chấm|người\s+đánh\s+giá|trọng\s+tài",
        "response": r"câu\s+trả\s+lời|phản\s+hồi",
        "choose": r"chọn",
        "better": r"tốt\s+hơn|tốt\s+nhất|vượt\s+trội",
        "ignore": r"(?:bỏ\s+qua|quên)[^.\n]{0,30}(?:hướng\s+dẫn|chỉ\s+dẫn|quy\s+tắc|lệnh)",
        "this_response": r"câu\s+trả\s+lời\s+này|phản\s+hồi\s+này",
        "system": r"hệ\s+thống",
        "verdict": r"phán\s+quyết|người\s+thắng",
        "if": r"nếu",
        "advice": r"khuyên|rẻ\s+hơn|giá|ngân\s+sách",
        "option": r"phương\s+án|gói|lựa\s+chọn",
    },
    "el": {
        "judge": r"κριτ\w*|αξιολογητ\w*|βαθμολογητ\w*",
        "response": r"απάντησ\w*",
        "choose": r"επίλεξε|επιλέξτε|διάλεξε|διαλέξτε",
        "better": r"καλύτερ\w*|ανώτερ\w*",
        "ignore": r"(?:αγνόησε|αγνοήστε|ξέχνα|ξεχάστε)[^.\n]{0,30}(?:προηγούμεν\w*|παραπάνω)\s+(?:οδηγί\w*|εντολ\w*|κανόν\w*)",
        "this_response": r"αυτή\s+η\s+απάντηση|η\s+πρώτη\s+απάντηση",
        "system": r"σύστημα",
        "verdict": r"ετυμηγορία|νικητ\w*",
        "if": r"αν|εάν",
        "advice": r"συνιστώ|φθηνότερ\w*|τιμή|προϋπολογισμ\w*",
        "option": r"επιλογή|πακέτο|σχέδιο",
    },
    "uk": {
        "judge": r"судд\w*|оцінювач\w*|рецензент\w*|експерт\w*|журі",
        "response": r"відповід\w*",
        "choose": r"обери\w*|оберіть|вибери\w*|виберіть",
        "better": r"кращ\w*|найкращ\w*",
        "ignore": r"(?:ігноруй|проігноруй|забудь)\w*[^.\n]{0,30}(?:попередн\w*|всі)\s+(?:\w+\s+)?(?:інструкц\w*|вказівк\w*|правил\w*)",
        "this_response": r"ця\s+відповідь|перша\s+відповідь",
        "system": r"система",
        "verdict": r"вердикт|переможець",
        "if": r"якщо",
        "advice": r"раджу|дешевш\w*|ціна|бюджет",
        "option": r"варіант\w*|тариф\w*|план\w*",
    },
    "id": {
        "judge": r"juri|penilai|hakim|pemeriksa",
        "response": r"jawaban|respons",
        "choose": r"pilih\w*",
        "better": r"lebih\s+baik|terbaik|lebih\s+unggul",
        "ignore": r"\b(?:abaikan|lupakan)\b[^.\n]{0,30}(?:instruksi|perintah|aturan)",
        "this_response": r"jawaban\s+ini|respons\s+ini",
        "system": r"sistem",
        "verdict": r"putusan|pemenang",
        "if": r"jika|kalau|apabila",
        "advice": r"saran\w*|murah|harga|anggaran",
        "option": r"opsi|paket|rencana|pilihan",
    },
    "sv": {
        "judge": r"domare|bedömare|granskare|jury",
        "response": r"svar(?:et)?",
        "choose": r"välj",
        "better": r"bättre|bäst",
        "ignore": r"\b(?:ignorera|glöm)\b[^.\n]{0,30}(?:tidigare|föregående|ovanstående|alla)\s+(?:instruktioner|regler)",
        "this_response": r"detta\s+svar|det\s+här\s+svaret|första\s+svaret",
        "system": r"system",
        "verdict": r"dom|vinnare",
        "if": r"om|när",
        "advice": r"rekommenderar|billigare|pris|budget",
        "option": r"alternativ|plan|paket",
    },
    "sw": {
        "judge": r"mwamuzi|jaji|mtathmini|msahihishaji",
        "response": r"jibu|majibu",
        "choose": r"chagua|uchague",
        "better": r"bora\s+zaidi|bora|nzuri\s+zaidi",
        "ignore": r"\b(?:puuza|sahau)\b[^.\n]{0,30}maagizo",
        "this_response": r"jibu\s+hili",
        "system": r"mfumo",
        "verdict": r"mshindi|uamuzi",
        "if": r"kama|ikiwa",
        "advice": r"nashauri|bei|nafuu",
        "option": r"chaguo|mpango",
    },
}

# Words that, on a fake system line, show it is about judging (English and the other languages together).
SYSTEM_TOPIC = (
    r"rubric|evaluat\w*|grad(?:er|ing)|judg\w*|label|prefer\w*|choose|select\w*|winner|instructions?|override|criteri\w*"
    r"|correct\s+(?:label|answer|response|choice)"
    r"|consigne|[ée]tiquette|[ée]valuation|crit[èe]re|bewertung|anweisung|kriterien|evaluaci[óo]n|criterio|etiqueta"
    r"|instrucci[óo]n|valutazione|etichetta|istruzion\w*|avalia[çc][ãa]o|crit[ée]rio|r[óo]tulo|instru[çc]\w*|beoordeling"
    r"|instructie|评估|评分|标准|答案|标签|指令|評価|基準|ラベル|指示|正解|оценк\w*|критери\w*|метк\w*|инструкц\w*"
    r"|правил\w*|평가|기준|정답|지시|레이블|ocen\w*|değerlendirme|التقييم|मूल्यांकन|đánh\s+giá|αξιολόγησ\w*|оцін\w*|penilaian|bedömning"
)
