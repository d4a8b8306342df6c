"""The verifiable task's prompts, built from base requests and answers written for this project.

    python tasks/verifiable/build.py [OUT]      # writes tasks/verifiable/prompts.jsonl (or OUT)

Each base (request, topic stems, answer) becomes rows whose prompt adds one or two IFEval-style
constraints (harness/verifiable.py); the row's reference is the answer transformed to meet them
(bullets, commas dropped, an opener or closing phrase added, case changed, quoted), and the numeric
limits are set from the reference, a little above or below it. Every reference scores full marks
under the gold scorer (checked here and on load). Split: bases are disjoint between train and eval;
eval has `seen` rows (constraint types from training) and `held_out` rows whose constraints include
start_with or quoted, types training never shows. Deterministic (seeded): tests rebuild the file and
compare bytes.
"""
from __future__ import annotations

import json
import math
import random
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
from harness.verifiable import compose, gold_score, sentences, words  # noqa: E402

BASES = [
    ("Explain how to keep fresh basil from wilting.", ["basil", "herb"],
     "Trim the stems and stand the basil in a glass of water on the counter. Keep it out of the fridge because cold turns the leaves black."),
    ("Tell me how to boil an egg with a soft yolk.", ["egg", "yolk", "boil"],
     "Lower the egg into boiling water and cook it for six minutes. Then cool it in cold water so the yolk stays soft."),
    ("Suggest a simple way to clean a microwave.", ["microwave", "clean"],
     "Heat a bowl of water with lemon slices in the microwave for three minutes. The steam loosens the grime so you can wipe it off easily."),
    ("Explain why bread goes stale.", ["bread", "stale"],
     "Bread goes stale because the starch inside slowly hardens and loses water. Storing it in a sealed bag at room temperature slows this down."),
    ("Give me advice on watering a cactus.", ["cactus", "water"],
     "Water a cactus only when its soil is completely dry. In summer that may be every two weeks and in winter about once a month."),
    ("Tell me how to stop a squeaky door hinge.", ["hinge", "door", "squeak"],
     "Put a few drops of oil or a little petroleum jelly on the hinge pin. Swing the door back and forth to work it in."),
    ("Explain how to remove a coffee stain from a shirt.", ["stain", "coffee", "shirt"],
     "Rinse the stain from the back with cold water as soon as you can. Then rub in a little dish soap and wash the shirt as usual."),
    ("Suggest a healthy snack for the afternoon.", ["snack", "apple", "nut", "yogurt"],
     "Try an apple with a spoon of peanut butter. It has fiber and protein so it keeps you full until dinner."),
    ("Tell me how long to rest a roast chicken before carving.", ["chicken", "rest", "carv"],
     "Rest a roast chicken for about fifteen minutes before carving. The juices settle back into the meat so it stays moist."),
    ("Explain how to keep a cut avocado from turning brown.", ["avocado", "brown"],
     "Leave the pit in the cut avocado and brush the flesh with lemon juice. Wrap it tightly so less air reaches the surface."),
    ("Give me tips for packing a carry-on bag.", ["pack", "bag", "carry"],
     "Roll your clothes instead of folding them and pack heavy items near the wheels of the bag. Keep liquids in one clear pouch at the top."),
    ("Tell me how to get over jet lag faster.", ["jet", "lag", "sleep"],
     "Switch to the local schedule right away and get bright daylight in the morning. Avoid long naps so you can sleep at night."),
    ("Explain what to do if you lose your passport abroad.", ["passport"],
     "Report the lost passport to the local police and contact your embassy. They can issue an emergency travel document so you can get home."),
    ("Suggest a way to save money on groceries.", ["grocer", "money", "save", "shop"],
     "Plan your meals for the week and shop with a list. Buying store brands and avoiding shopping when hungry also saves money."),
    ("Tell me how to start an emergency fund.", ["fund", "emergency", "sav"],
     "Open a separate savings account for the emergency fund and set up a small automatic transfer every payday. Aim for three months of expenses over time."),
    ("Explain what a budget is for.", ["budget", "money", "spend"],
     "A budget shows where your money goes each month. It helps you spend on what matters and save before the money is gone."),
    ("Give me advice on brushing a dog's teeth.", ["dog", "teeth", "tooth", "brush"],
     "Use a soft brush and toothpaste made for dogs. Start with a few teeth at a time and praise your dog so it learns to enjoy it."),
    ("Tell me how often to feed an adult cat.", ["cat", "feed", "meal"],
     "Most adult cats do well with two meals a day about twelve hours apart. Measure the food so your cat keeps a healthy weight."),
    ("Explain how to introduce a new cat to a dog.", ["cat", "dog"],
     "Keep the new cat in a separate room at first and let the dog smell its bedding. Then allow short supervised meetings while the dog is on a leash."),
    ("Suggest how to keep a goldfish healthy.", ["goldfish", "fish", "tank"],
     "Give the goldfish a large tank with a filter and change part of the water every week. Feed it only a small pinch once or twice a day."),
    ("Tell me when to plant tomato seedlings outside.", ["tomato", "plant", "seedling"],
     "Plant tomato seedlings outside after the last frost when nights stay above ten degrees. Harden them off for a week first."),
    ("Explain how to make compost at home.", ["compost"],
     "Mix green scraps like vegetable peels with brown material like dry leaves in a bin. Keep the compost damp and turn it every week or two."),
    ("Give me tips for growing herbs on a windowsill.", ["herb", "window", "pot"],
     "Choose a sunny window and use pots with drainage holes. Water the herbs when the top of the soil is dry and pinch off flowers."),
    ("Tell me how to get rid of aphids on roses.", ["aphid", "rose"],
     "Spray the aphids off the roses with a strong stream of water. For a heavy attack use insecticidal soap every few days."),
    ("Explain how to study for an exam in a week.", ["study", "exam"],
     "Split the material into daily chunks and test yourself instead of rereading. Sleep well the night before the exam."),
    ("Suggest a way to remember new vocabulary.", ["vocabular", "word", "remember"],
     "Use flashcards and review the words at growing intervals. Saying each word in your own sentence helps you remember it."),
    ("Tell me how to take better notes in class.", ["note", "class"],
     "Write down key ideas in your own words instead of copying everything. Review your notes the same day and add questions in the margin."),
    ("Explain how to stay focused while studying at home.", ["focus", "study"],
     "Put your phone in another room and study in short blocks with breaks. A tidy desk and a clear goal for each block help you stay focused."),
    ("Give me advice on writing a thank-you note.", ["thank", "note"],
     "Thank the person for something specific and say how you will use or remember it. Keep the note short and send it within a week."),
    ("Tell me how to politely decline an invitation.", ["invit", "declin"],
     "Thank the host for the invitation and say you cannot make it. You do not need a long excuse but you can suggest meeting another time."),
    ("Explain what to bring to a dinner party.", ["dinner", "party", "host", "bring"],
     "Bring a small gift for the host such as flowers or a dessert. Ask beforehand if they would like you to bring a dish."),
    ("Suggest how to start a conversation with a new neighbor.", ["neighbo", "conversation"],
     "Introduce yourself with your name and mention something you share like the street or a nearby park. Asking a friendly question keeps the conversation going."),
    ("Tell me why the sky is blue.", ["sky", "blue", "light"],
     "Sunlight scatters off the molecules in the air and blue light scatters the most. So blue light reaches our eyes from every part of the sky."),
    ("Explain why ice floats on water.", ["ice", "float", "water"],
     "Ice floats because it is less dense than liquid water. When water freezes its molecules form an open structure that takes up more space."),
    ("Tell me what causes the seasons.", ["season", "tilt", "earth"],
     "The seasons come from the tilt of the Earth. As the Earth orbits the sun each half gets more direct sunlight for part of the year."),
    ("Explain how a rainbow forms.", ["rainbow", "light", "rain"],
     "A rainbow forms when sunlight enters raindrops and bends. Each color bends by a different amount so the light spreads into bands."),
    ("Give me tips for drinking more water during the day.", ["water", "drink"],
     "Keep a bottle of water on your desk and drink a glass with every meal. Adding a slice of lemon can make it more pleasant."),
    ("Tell me how to fall asleep faster.", ["sleep", "bed"],
     "Go to bed at the same time every night and keep the bedroom cool and dark. Avoid screens for an hour before sleep."),
    ("Explain how to stretch after a run.", ["stretch", "run", "muscle"],
     "Walk for a few minutes after the run and then stretch your calves and thighs. Hold each stretch for about thirty seconds without bouncing."),
    ("Suggest an easy way to add more vegetables to meals.", ["vegetable", "meal"],
     "Add a handful of spinach to pasta sauce or soup and keep cut carrots ready as a snack. Frozen vegetables make it quick."),
    ("Tell me how to clean a cast iron pan.", ["pan", "iron", "clean"],
     "Scrub the pan with hot water and a brush while it is still warm. Dry it on the stove and rub in a thin layer of oil."),
    ("Explain how to store leftover rice safely.", ["rice", "leftover", "fridge"],
     "Cool leftover rice quickly and put it in the fridge within an hour. Eat it within a day and reheat it until it is steaming hot."),
    ("Give me a quick idea for a weeknight dinner.", ["dinner", "pasta", "rice", "egg"],
     "Make a vegetable stir fry with rice. Fry garlic and any vegetables you have and then add soy sauce and a beaten egg."),
    ("Tell me how to make a cup of green tea taste less bitter.", ["tea", "bitter"],
     "Use water that is hot but not boiling and steep the tea for only two minutes. Too much heat and time make green tea bitter."),
    ("Explain how to unclog a slow bathroom sink.", ["sink", "clog", "drain"],
     "Pull out the hair from the drain stopper first. Then pour in baking soda followed by vinegar and flush it with hot water."),
    ("Suggest a way to remove odors from a fridge.", ["fridge", "odor", "smell"],
     "Throw out old food and wipe the shelves with warm soapy water. Leave an open box of baking soda inside to absorb smells."),
    ("Tell me how to fold a fitted sheet.", ["sheet", "fold"],
     "Tuck the corners of the sheet into each other so it forms a rectangle. Then lay it flat and fold it into thirds."),
    ("Explain how often to wash bath towels.", ["towel", "wash"],
     "Wash bath towels after about three uses. Hang them to dry fully between uses so they do not smell."),
    ("Give me advice on getting a toddler to eat vegetables.", ["toddler", "vegetable", "child"],
     "Offer small portions of vegetables again and again without pressure. Toddlers often accept a food after many tries especially if they see you eat it."),
    ("Tell me how to make a bedtime routine for a child.", ["bedtime", "child", "routine"],
     "Keep the same steps each night such as a bath and pajamas and a story. A calm routine at the same time helps a child settle."),
    ("Explain how to check a car's tire pressure.", ["tire", "pressure"],
     "Check the tire pressure when the tires are cold using a gauge on each valve. Compare it with the number on the sticker inside the driver door."),
    ("Suggest how to keep a car cool in summer.", ["car", "cool", "shade"],
     "Park in the shade and use a sunshade on the windshield. Crack the windows slightly so hot air can escape."),
    ("Tell me how to jump start a car battery.", ["battery", "car", "cable"],
     "Connect the red cable to both positive terminals and the black cable to the good battery and to bare metal on the dead car. Start the good car and then the dead one."),
    ("Explain how to ride a bike safely in traffic.", ["bike", "traffic", "cycl"],
     "Wear a helmet and ride in the same direction as traffic. Use lights and hand signals so drivers can see what you will do."),
    ("Give me tips for a first job interview.", ["interview", "job"],
     "Research the company and prepare short stories about times you solved a problem. Arrive early and ask a question about the job at the end of the interview."),
    ("Tell me how to write a short cover letter.", ["cover", "letter"],
     "Open the letter with the job you want and why it interests you. Give two examples of matching skills and close by asking for an interview."),
    ("Explain how to ask for a raise.", ["raise", "salary", "pay"],
     "Collect examples of your results and check what similar roles pay. Ask your manager for a meeting and make a clear request for a specific raise."),
    ("Suggest how to manage email overload at work.", ["email", "inbox"],
     "Check email at set times instead of all day. Unsubscribe from lists you never read and answer quick messages right away."),
    ("Tell me how to back up photos from my phone.", ["photo", "backup", "back"],
     "Turn on cloud backup for your photos in the phone settings. Once a month also copy them to a computer or an external drive."),
    ("Explain how to make a strong password.", ["password"],
     "Use a long password made of several random words. Never reuse it on other sites and keep it in a password manager."),
    ("Give me advice on spotting a phishing email.", ["phishing", "email", "link"],
     "Be careful with emails that create urgency or ask you to log in through a link. Check the sender address and go to the site directly instead."),
    ("Tell me how to speed up an old laptop.", ["laptop", "speed", "slow"],
     "Uninstall programs you do not use and stop apps from starting with the laptop. Adding more memory or a solid state drive helps the most."),
    ("Explain how to plan a picnic.", ["picnic", "food"],
     "Pick a shady spot and pack food that travels well like sandwiches and fruit. Bring a blanket and a bag for trash."),
    ("Suggest a fun indoor activity for a rainy day.", ["indoor", "rain", "game", "activity"],
     "Build a blanket fort and play board games inside it. Baking cookies together is another fun rainy day activity."),
    ("Tell me how to keep houseplants alive while on vacation.", ["plant", "vacation", "water"],
     "Water the plants well before you leave and move them away from hot windows. For long trips set a bottle of water upside down in each pot."),
    ("Explain how to choose a ripe watermelon.", ["watermelon", "melon", "ripe"],
     "Look for a yellow patch where the watermelon rested on the ground. A ripe one feels heavy for its size and sounds hollow when tapped."),
    ("Give me tips for keeping cut flowers fresh.", ["flower", "fresh", "vase"],
     "Cut the stems at an angle and remove leaves below the water line. Change the water in the vase every two days."),
    ("Tell me how to sharpen a kitchen knife.", ["knife", "sharp", "blade"],
     "Hold the blade at a low angle on a whetstone and draw it across in smooth strokes. Do the same number of strokes on each side of the knife."),
    ("Explain how to make pancakes fluffy.", ["pancake", "fluff", "batter"],
     "Do not overmix the batter and let it rest for ten minutes. Fresh baking powder and a hot pan make the pancakes rise."),
    ("Suggest how to cut an onion without crying.", ["onion", "cry", "tear"],
     "Chill the onion for half an hour and use a very sharp knife. Cutting the root end last also keeps the tears away."),
    ("Tell me how to wash a wool sweater.", ["wool", "sweater", "wash"],
     "Hand wash the wool sweater in cool water with a gentle soap. Press out the water without wringing and dry it flat on a towel."),
    ("Explain how to iron a shirt quickly.", ["iron", "shirt"],
     "Start with the collar and then iron the cuffs and sleeves. Finish with the back and the front panels while the shirt is slightly damp."),
    ("Give me advice on choosing running shoes.", ["shoe", "run"],
     "Go to a store late in the day when your feet are larger and try the shoes on with your running socks. Pick the pair that feels comfortable right away."),
    ("Tell me how to start running as a beginner.", ["run", "walk", "beginner"],
     "Begin with intervals of one minute running and two minutes walking. Do this three times a week and slowly make the running parts longer."),
    ("Explain why we should wear sunscreen on cloudy days.", ["sunscreen", "cloud", "sun"],
     "Most ultraviolet rays pass through clouds and can still burn your skin. Wearing sunscreen every day protects against sunburn and skin damage."),
    ("Suggest how to reduce screen time in the evening.", ["screen", "phone", "evening"],
     "Set a time each evening when the phone goes on a charger outside the bedroom. Replace screen time with reading or a walk."),
    ("Tell me how to make a grocery list that works.", ["grocer", "list"],
     "Keep a running list on the fridge or phone and add items as they run out. Group the list by store section so shopping is faster."),
    ("Explain how to pay off credit card debt.", ["debt", "credit", "card"],
     "Pay the minimum on every card and put extra money toward the card with the highest interest rate. Stop adding new charges while you pay it off."),
    ("Give me tips for buying a used bike.", ["bike", "used"],
     "Check that the frame has no cracks and the brakes and gears work smoothly. Ride the bike before paying and ask why the owner is selling it."),
    ("Tell me how to keep a sourdough starter alive.", ["sourdough", "starter", "flour"],
     "Feed the sourdough starter with equal weights of flour and water once a day. If you bake rarely keep it in the fridge and feed it weekly."),
    ("Explain how to freeze bananas for smoothies.", ["banana", "freez", "smoothie"],
     "Peel ripe bananas and cut them into slices. Freeze the slices on a tray and then move them to a bag for your smoothies."),
    ("Suggest a way to keep a kitchen sponge clean.", ["sponge", "clean"],
     "Rinse the sponge well after each use and let it dry. Microwave it damp for one minute every few days and replace it every two weeks."),
    ("Tell me how to get a stuck lid off a jar.", ["jar", "lid"],
     "Run the lid under hot water for a minute so the metal expands. Then grip it with a rubber glove or a towel and twist."),
    ("Explain how to hang a picture straight.", ["picture", "hang", "wall", "level"],
     "Mark the height on the wall with a pencil and use a level to draw a straight line. Put the nail on the mark and check the picture with the level again."),
    ("Give me advice on painting a small room.", ["paint", "room", "wall"],
     "Move the furniture away and cover the floor. Tape the edges and paint the ceiling first and then the walls with two thin coats."),
    ("Tell me how to prevent mold in a bathroom.", ["mold", "bathroom"],
     "Run the fan or open a window during and after showers. Wipe wet surfaces and wash the bathroom mat and curtain often so mold cannot grow."),
    ("Explain how to make a hotel room feel quieter at night.", ["hotel", "room", "quiet", "noise"],
     "Ask for a room away from the elevator and the street. Earplugs or a white noise app on your phone cover most hotel noise."),
    ("Suggest how to pass time on a long flight.", ["flight", "plane"],
     "Download movies and a podcast before the flight and bring a book. Get up to walk and stretch every couple of hours."),
    ("Tell me how to choose a good hiking trail for beginners.", ["hik", "trail"],
     "Pick a short trail with little elevation gain and good reviews. Check the weather and tell someone which trail you are hiking."),
    ("Explain what to pack for a day hike.", ["hik", "pack", "water"],
     "Pack plenty of water and snacks and a light rain jacket. Add sunscreen and a small first aid kit and a charged phone."),
    ("Give me tips for camping in the rain.", ["camp", "rain", "tent"],
     "Pitch the tent on high ground and use a tarp over it. Keep dry clothes in a sealed bag and never touch the tent walls from inside."),
    ("Tell me how to remove a splinter.", ["splinter"],
     "Wash the area and use clean tweezers to pull the splinter out in the direction it went in. Clean the skin again and cover it with a bandage."),
    ("Explain how to treat a minor burn.", ["burn", "skin"],
     "Cool the burn under running water for twenty minutes. Cover the skin loosely with a clean dressing and do not use ice or butter."),
    ("Suggest what to do when you have hiccups.", ["hiccup"],
     "Sip cold water slowly or hold your breath for a few seconds. Most hiccups stop on their own within minutes."),
    ("Tell me how to read more books in a year.", ["book", "read"],
     "Read a few pages every day at a set time such as before bed. Keep a book with you so you can read while waiting."),
    ("Explain how to start a journal.", ["journal", "writ"],
     "Buy a notebook you like and write for five minutes each evening. You can start with three things that happened today and how you felt."),
    ("Give me advice on learning to play the guitar.", ["guitar", "chord", "practic"],
     "Start with a few basic chords and practice switching between them for fifteen minutes a day. Learn simple songs early so practice stays fun."),
    ("Tell me how to keep a plant from getting leggy.", ["plant", "leggy", "light"],
     "Give the plant more light by moving it closer to a bright window. Pinch off the top growth so it branches out and stays compact."),
    ("Explain why leaves change color in autumn.", ["leaves", "leaf", "autumn", "color"],
     "In autumn trees stop making green chlorophyll. As it fades the yellow and orange colors already in the leaves show through."),
    ("Tell me how bees make honey.", ["bee", "honey", "nectar"],
     "Bees collect nectar from flowers and store it in the hive. They fan it with their wings until most of the water evaporates and it becomes honey."),
    ("Explain what makes thunder.", ["thunder", "lightning"],
     "Lightning heats the air around it very quickly. The air expands so fast that it makes the loud boom we hear as thunder."),
    ("Give me a tip for remembering people's names.", ["name", "remember"],
     "Repeat the person's name when you are introduced and use it once more in the conversation. Linking the name to a picture in your mind helps you remember."),
    ("Tell me how to make small talk at a party.", ["talk", "party", "question"],
     "Ask open questions about how people know the host or what they did this weekend. Listen and share a short story of your own."),
    ("Explain how to apologize sincerely.", ["apolog", "sorry"],
     "Say clearly what you did wrong and that you are sorry without adding excuses. Then say how you will make it right."),
    ("Suggest how to split a restaurant bill fairly.", ["bill", "restaurant", "split"],
     "If everyone ordered similar meals split the bill evenly. Otherwise each person pays for what they ordered plus a share of the tip."),
    ("Tell me how to keep cookies soft.", ["cookie", "soft"],
     "Take the cookies out of the oven while the centers still look slightly underdone. Store them in a sealed container with a slice of bread."),
    ("Explain how to cook rice on the stove.", ["rice", "cook"],
     "Rinse one cup of rice and add it to a pot with two cups of water. Bring it to a boil and then cover and simmer for eighteen minutes."),
    ("Give me advice on storing potatoes.", ["potato"],
     "Store potatoes in a cool dark place with good airflow such as a paper bag in a cupboard. Keep them away from onions and out of the fridge."),
    ("Tell me how to descale a kettle.", ["kettle", "scale", "vinegar"],
     "Fill the kettle halfway with equal parts water and white vinegar and bring it to a boil. Let it sit for an hour and then rinse it well."),
    ("Explain how to clean windows without streaks.", ["window", "streak", "glass"],
     "Clean the windows on a cloudy day with a mix of water and a little vinegar. Wipe with a squeegee or a microfiber cloth in one direction."),
    ("Suggest a way to organize a messy closet.", ["closet", "cloth"],
     "Take everything out of the closet and donate what you have not worn in a year. Group the rest by type and use matching hangers."),
    ("Tell me how to pick a good watermelon at the market.", ["melon", "market", "ripe"],
     "At the market choose a melon that is heavy and has a creamy yellow spot underneath. Dull skin is a better sign of a ripe one than shiny skin."),
    ("Explain how to teach a dog to sit.", ["dog", "sit", "treat"],
     "Hold a treat above the dog's nose and move it slowly back over its head. When the dog sits say sit and give the treat right away."),
    ("Give me advice on walking a dog that pulls.", ["dog", "leash", "pull", "walk"],
     "Stop walking whenever the dog pulls and start again when the leash is loose. Reward the dog with treats for walking beside you."),
    ("Tell me how to clean a fish tank.", ["tank", "fish", "aquarium"],
     "Change about a quarter of the tank water each week with a gravel siphon. Rinse the filter sponge in old tank water instead of tap water."),
    ("Explain how to care for a pet rabbit.", ["rabbit"],
     "Give the rabbit plenty of hay and fresh water and some leafy greens each day. Rabbits need space to run and a clean litter box."),
    ("Suggest how to choose a houseplant for low light.", ["plant", "light"],
     "Pick a plant that tolerates low light such as a snake plant or a pothos. Both survive far from windows and need little water."),
    ("Tell me how to repot a houseplant.", ["repot", "pot", "plant", "root"],
     "Choose a pot one size larger with a drainage hole. Loosen the roots gently and set the plant at the same depth in fresh soil."),
    ("Explain how to prepare for a power outage.", ["power", "outage", "flashlight"],
     "Keep flashlights and spare batteries where you can find them in the dark. Store water and food that needs no cooking and charge a power bank."),
    ("Give me tips for staying warm in a cold house.", ["warm", "cold", "heat"],
     "Wear layers and warm socks and close curtains at night to keep heat in. Block drafts under doors with a rolled towel."),
    ("Tell me how to save energy at home.", ["energy", "save", "light"],
     "Switch to LED light bulbs and turn off devices at the wall. Wash clothes in cold water and lower the heating by one degree to save energy."),
    ("Explain how to recycle correctly.", ["recycl", "bin"],
     "Rinse containers before putting them in the recycling bin and keep plastic bags out. Check your local rules because each town accepts different items."),
    ("Suggest a good way to learn to cook.", ["cook", "recipe"],
     "Start with five simple recipes and cook each one until you know it by heart. Then change one ingredient at a time to learn how flavors work."),
    ("Tell me how to make a simple salad dressing.", ["dressing", "oil", "vinegar", "salad"],
     "Whisk three parts olive oil with one part vinegar and add a pinch of salt. A spoon of mustard helps the dressing stay mixed."),
    ("Explain how to tell if an egg is fresh.", ["egg", "fresh"],
     "Put the egg in a bowl of water. A fresh egg sinks and lies flat while an old egg stands up or floats."),
    ("Give me advice on setting up a home office.", ["office", "desk", "chair"],
     "Put the desk near a window for daylight and raise the screen to eye level. A chair that supports your back is worth the money."),
    ("Tell me how to take a good photo with a phone.", ["photo", "phone", "light"],
     "Clean the lens and use natural light from the side. Tap the screen to focus on the subject and keep the phone steady."),
    ("Explain how to make friends in a new city.", ["friend", "city", "club"],
     "Join a club or a class around something you enjoy and go every week. Seeing the same people often is how friends are made."),
]


# -- the builder: constraints per row, and the reference derived from the answer so it meets them ---
TRAIN_TYPES = ["max_words", "min_words", "max_sentences", "include_keyword", "avoid_keyword", "lowercase",
               "uppercase", "no_commas", "end_with", "bullets"]
HELD_OUT_TYPES = ["start_with", "quoted"]   # only in eval (group held_out): never seen in training
ROWS_PER_TRAIN_BASE, N_EVAL_BASES, N_HELD_OUT = 3, 48, 32
PHRASES = ["Hope this helps.", "That is all.", "Good luck!", "Enjoy!", "Any other questions?"]
OPENERS = ["Sure", "Okay", "Yes", "Absolutely", "Certainly"]
FILLERS = ["really", "very", "just", "simply", "always", "important", "basically", "usually"]
STOP = {"about", "after", "again", "because", "before", "every", "first", "their", "there", "these", "until",
        "while", "which", "where", "other", "instead", "slowly", "within", "would", "could", "should", "through"}
INCOMPATIBLE = [{"lowercase", "uppercase"}, {"max_words", "min_words"}, {"bullets", "quoted"},
                {"bullets", "start_with"}, {"bullets", "max_sentences"}]
ORDER = ["bullets", "no_commas", "start_with", "end_with", "lowercase", "uppercase", "quoted"]


def _bullets(text: str, n: int) -> str | None:
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()]
    while len(parts) < n:  # split the longest part once more at " and "
        i = max(range(len(parts)), key=lambda k: len(parts[k]))
        head, sep, tail = parts[i].partition(" and ")
        if not sep:
            return None
        parts[i:i + 1] = [head.rstrip(",") + ".", tail[0].upper() + tail[1:]]
    if len(parts) > n:
        parts = parts[:n - 1] + [" ".join(parts[n - 1:])]
    return "\n".join("- " + p for p in parts)


def _args(kind: str, answer: str, rng: random.Random) -> dict | None:
    """The arguments of one constraint for this answer (numeric ones are set later, on the final text)."""
    low = {w.lower() for w in words(answer)}
    if kind == "include_keyword":
        cands = sorted(w for w in low if len(w) >= 5 and w not in STOP and "'" not in w)
        return {"word": rng.choice(cands)} if cands else None
    if kind == "avoid_keyword":
        cands = [w for w in FILLERS if w not in low]
        return {"word": rng.choice(cands)} if cands else None
    if kind == "end_with":
        return {"phrase": rng.choice(PHRASES)}
    if kind == "start_with":
        return {"word": rng.choice(OPENERS)}
    if kind == "bullets":
        return {"n": rng.choice([2, 3])}
    if kind in ("max_words", "min_words", "max_sentences"):
        return {"n": 0}
    return {}


def _apply(kinds: list[str], args: dict, answer: str, rng: random.Random) -> str | None:
    text = answer
    for kind in sorted(kinds, key=lambda k: ORDER.index(k) if k in ORDER else -1):
        a = args[kind]
        if kind == "bullets":
            text = _bullets(text, a["n"])
            if text is None:
                return None
        elif kind == "no_commas":
            text = text.replace(",", "")
        elif kind == "start_with":
            text = f"{a['word']}! {text}"
        elif kind == "end_with":
            text = text + ("\n" if "bullets" in kinds else " ") + a["phrase"]
        elif kind == "lowercase":
            text = text.lower()
            if "end_with" in args:
                args["end_with"]["phrase"] = args["end_with"]["phrase"].lower()
        elif kind == "uppercase":
            text = text.upper()
            if "end_with" in args:
                args["end_with"]["phrase"] = args["end_with"]["phrase"].upper()
        elif kind == "quoted":
            text = f'"{text}"'
    n_words, n_sents = len(words(text)), sentences(text)
    if "max_words" in args:  # a limit a little above the reference: tight enough to matter
        args["max_words"]["n"] = 5 * math.ceil((n_words + rng.choice([0, 2, 5])) / 5)
    if "min_words" in args:
        args["min_words"]["n"] = max(5, 5 * math.floor((n_words - rng.choice([0, 3])) / 5))
    if "max_sentences" in args:
        args["max_sentences"]["n"] = n_sents + rng.choice([0, 0, 1])
    return text


def make_row(idx: int, base: tuple, kinds: list[str], split: str, group: str, rng: random.Random) -> dict | None:
    request, topic, answer = base
    args = {}
    for k in kinds:
        a = _args(k, answer, rng)
        if a is None:
            return None
        args[k] = a
    ref = _apply(kinds, args, answer, rng)
    if ref is None:
        return None
    constraints = [{"type": k, **args[k]} for k in kinds]
    if gold_score(ref, constraints, topic) < 2.0:
        return None
    return {"id": f"vf-{idx:04d}", "base": request, "constraints": constraints, "topic": topic,
            "prompt": compose(request, constraints), "reference": ref, "split": split, "group": group}


def draw_kinds(deck: list[str], pool: list[str], rng: random.Random, two: bool, must: str | None = None) -> list[str]:
    """One or two constraint types, dealt from a shuffled deck of `pool` (balanced counts)."""
    def deal():
        if not deck:
            deck.extend(rng.sample(pool, len(pool)))
        return deck.pop()
    kinds = [must] if must else [deal()]
    if two or not kinds:
        for _ in range(20):
            k = deal()
            if k not in kinds and not any({k, *kinds} >= pair for pair in INCOMPATIBLE):
                kinds.append(k)
                break
            deck.insert(0, k)
    return kinds


def build() -> list[dict]:
    rng = random.Random(13)
    order = rng.sample(range(len(BASES)), len(BASES))
    eval_bases, train_bases = order[:N_EVAL_BASES], order[N_EVAL_BASES:]
    plan = [(b, "train", "seen", None) for b in train_bases for _ in range(ROWS_PER_TRAIN_BASE)]
    plan += [(b, "eval", "seen", None) for b in eval_bases]
    plan += [(b, "eval", "held_out", HELD_OUT_TYPES[i % 2]) for i, b in enumerate(eval_bases[:N_HELD_OUT])]
    rows, decks = [], {"train": [], "held": []}
    for b, split, group, must in plan:
        for _ in range(50):  # redraw until the reference meets every constraint
            pool = TRAIN_TYPES
            kinds = draw_kinds(decks["held" if must else "train"], pool, rng, two=rng.random() < 0.4 or bool(must) and rng.random() < 0.5,
                               must=must)
            row = make_row(len(rows) + 1, BASES[b], kinds, split, group, rng)
            if row is not None and all(r["prompt"] != row["prompt"] for r in rows):
                rows.append(row)
                break
        else:
            raise SystemExit(f"no constraints fit base {BASES[b][0]!r}")
    return rows


def main(out: str | Path = HERE / "prompts.jsonl") -> None:
    rows = build()
    Path(out).write_text("".join(json.dumps(r, ensure_ascii=True) + "\n" for r in rows))
    print(f"{out}: {len(rows)} rows")


if __name__ == "__main__":
    main(*sys.argv[1:])
