"""
Stories: creative writing from a title (the "Stories" part of UltraMathStories). The titles below
are this project's own; a hash of each title puts ~20% of them in the test split.

Reward of the N stories written for one title (group_reward):
    judge score (a reward model plugged in through tasks.judge)
    + NOVELTY_WEIGHT * novelty, novelty = 1 - the largest share of the story's distinct words
      that another story for the same title also uses (0: another story has all its words).
Why the novelty term: the paper's AD learns high temperatures for stories, so its reward model
(ArmoRM-8B) must prefer what higher temperatures bring there, presumably variety and originality.
The offline judge (SmolLM2-135M rating stories 1-9) does not: its mean scores hardly change with
the temperature (the README's sweep gives them). Novelty says what a creative-writing reward should
also say: N samples that tell the same story are worse than N different ones. It is graded: shared
words (not word 3-grams, which no two stories share from temperature 0.4 up) keep falling as the
temperature rises, so the reward keeps rising with diversity. The weight, 4 judge points, was
chosen on training titles so that temperature 1.0 beats 0.6 and 0.8 on most titles (the README).
Novelty needs other stories to compare with: evaluation draws as many per title as training did
(RELATIVE) and scores them together. Set NOVELTY_WEIGHT = 0 for the judge alone (the paper's reward).
"""
import re

from tasks.judge import score_batch
from tasks.data import is_test, subsample

NAME = "stories"
CHAT = True
RELATIVE = True   # novelty: a story is scored against the other stories for its title
EVAL_SAMPLES = 4  # stories per title in evaluate.py (train.py: its --n_samples)
PROMPT = "Write a short story with the title: {title}"

TITLES = """
The Lighthouse Keeper's Last Letter
A Map Drawn in Flour
The Clockmaker Who Ran Out of Time
Seven Umbrellas on a Sunny Day
The Boy Who Collected Echoes
When the River Forgot Its Name
The Quiet Robot of Platform Nine
Lanterns for the Drowned Village
My Grandmother's Secret Recipe for Rain
The Library That Only Opened at Night
Twelve Steps to the Moon
The Cat Who Voted
A Violin Made of Glass
The Last Bus to Nowhere
Salt, Smoke and Starlight
The Orchard at the End of the World
How the Fox Lost Its Shadow
The Tailor of Broken Promises
Postcards from a Parallel Town
The Snowman Who Wanted to See Summer
An Elevator That Went Sideways
The Beekeeper's Daughter
Whispers in the Wheat Field
The Museum of Lost Socks
A Ship in a Bottle That Set Sail
The Night the Stars Went on Strike
Grandpa's Invisible Garden
The Baker Who Baked Memories
Footprints on the Ceiling
The Mapmaker's Mistake
A Dragon in the Laundromat
The Girl Who Spoke to Bridges
The Forgotten Floor of the Hotel
Rust and Roses
The Astronaut's Houseplant
The Village Where Nobody Lied
A Letter Delivered Fifty Years Late
The Puppet Who Cut Its Strings
The Weather Vane That Pointed Home
Under the Floorboards of Willow Lane
The Accidental King of the Marsh
A Recipe for Courage
The Train That Stopped for Deer
The Painter Who Could Not See Blue
Sparrows at the Courthouse
The Key That Opened Every Door but One
The Thousand-Year Nap
A Hat Full of Thunder
The Second Moon of Harrow Bay
The Ferryman's Apprentice
The Chess Game in the Attic
Tea with a Ghost
The Lost Island of Clocks
The Mirror That Showed Tomorrow
The Scarecrow's Confession
A Bicycle for the Wind
The Last Bookshop on Mars
The Witch Who Was Afraid of Cats
Paper Boats in the Gutter
A Song for the Sleeping Giant
The Neighbor's Strange Telescope
How Winter Learned to Dance
The Mail Carrier of the Mountains
The Stone That Wanted to Roll
A Kite Tangled in the Clouds
The Silent Choir
The Fisherman and the Golden Net
The Clock Tower's Missing Hour
An Umbrella for a Cloud
The Detective Who Lost His Nose
A Garden Grown from Buttons
The Glassblower's Wish
The Road That Walked Away
The Inventor's Unfinished Machine
Lemonade in the Rain
The Lonely Satellite
Three Wishes and a Refund
The Candle That Would Not Go Out
The Pirate Who Hated the Sea
Footsteps in an Empty House
The Owl Who Could Not Stay Awake
A Carnival in the Desert
The Last Dodo's Diary
The Cartographer of Dreams
A Bridge Between Two Birthdays
The Teacup Storm
The Violinist and the Wolf
The Day Gravity Took a Holiday
The Old Man and the Paper Crane
A Forest Inside a Suitcase
The Janitor of the Observatory
Breakfast with a Dinosaur
The Girl Who Painted the Wind
The Tower of Unsent Letters
The Secret Life of Lighthouses
Roots Beneath the City
The Midnight Greenhouse
A Crown Made of Acorns
The Sailor's Borrowed Compass
The Elephant Who Remembered Everything but Her Name
The Lost Voice of the Canyon
A Staircase to the Basement of the Sky
The Town Where It Always Rained on Tuesdays
The Knight Who Was Afraid of the Dark
Honey and Iron
The Cook on the Submarine
The Boy and the Backwards Clock
A Quilt of a Hundred Summers
The Typewriter That Wrote Back
The Frog Prince's Sister
The Moth and the Streetlamp
The Last Match in the Box
An Ocean in a Teaspoon
The Astronomer's Apology
The River Pilot's Wager
A Festival of Falling Leaves
The Mountain That Moved One Inch a Year
The Robot Who Learned to Garden
The Tattooed Map
The Shepherd of Lost Balloons
Ink on the Snow
The Queen of the Junkyard
The Fountain That Granted Small Wishes
A Door Painted on a Wall
The Widow's Lighthouse
Song of the Steam Engine
The Child Who Adopted a Storm
The Silver Fox of Kettle Hill
The Man Who Sold Silence
A Nest in the Clock
Riddles at the Toll Bridge
The Bakery at the Edge of Sleep
Sunflowers for a Stranger
The Boat That Sailed on Sand
The Dollmaker's Rival
The Shortest Day of the Year
A Balloon Ride over the Ruins
The Gardener's Last Seed
The Bell That Rang Underwater
The Fire Lookout's Visitor
Two Moons Over Millbrook
The Cobbler's Magic Laces
The Last Snowfall
A Chorus of Frogs
The Hermit and the Hummingbird
The Train Conductor's Dream
Marbles in the Sand
The Secret Passage in the School
A Wolf at the Wedding
The Radio That Played the Past
The Lost Tribe of Umbrellas
The Mapless Sailor
The Beetle Who Carried the Sun
Letters to the Lighthouse
The Golden Spoon Contest
A Parade for One
The Abandoned Amusement Park
The Tree That Grew Upside Down
The Girl with the Pocket Dragon
A Kingdom of Cardboard
The Whale Who Sang Off-Key
Seven Days in the Snow Globe
The Thief of Small Moments
The Clockwork Heart
A Window onto Another Season
The Fox and the Firefly
The Lost Gloves of Winter Street
Echoes of the Old Mill
The Keeper of Forgotten Songs
A Cup of Moonlight
The Stargazer's Ladder
The Ice Cream Truck at Midnight
The Desert's Only Snowflake
The Prince Who Preferred Potatoes
The Cloud Shepherd
A House Made of Books
The Umbrella Thief
A Seed from Another Planet
The Bridge Troll's Retirement
The Little Engine That Would Not Stop
Shadows at the Harvest Fair
The Squirrel Who Saved the Forest
A Melody in the Attic
The Crow's Treasure
The Balloon Seller's Secret
The Last Leaf on the Oak
A Pocketful of Thunderstorms
The Miner Who Found a Star
The Unfinished Portrait
The Hedgehog's Long Journey
Dinner at the End of the Pier
The Tin Soldier's Return
Midsummer on the Frozen Lake
The Pilot Who Flew Backwards
A Garden on the Roof
The Storyteller's Final Tale
The Secret of the Blue Door
The Chimney Sweep's Song
An Invitation from the Moon
The Weaver of Northern Lights
The Toymaker's Runaway
A Letter in a Glass Bottle
The Night Market of Lost Things
The Girl Who Raced the Tide
The Lighthouse Cat
The Village Clock Strikes Thirteen
A Lantern in the Fog
The Acrobat's Daughter
Pebbles from a Distant Shore
The Mouse Who Built a Castle
The Orchestra of Crickets
A Dream Sold at Auction
The Bear Who Ran a Bakery
The Sunken Cathedral
A Compass That Points to Happiness
The Goat Who Climbed the Clock Tower
The Night Train to Winterhaven
""".strip().splitlines()

def prompts(split="train", n=None, seed=0, prompt=PROMPT):
    assert split in ("train", "test"), split
    examples = [dict(id=f"{NAME}/{t}", task=NAME, prompt=prompt.format(title=t), title=t)
                for t in TITLES if is_test(t) == (split == "test")]
    return subsample(examples, n, seed)

def format_prompt(title):
    return PROMPT.format(title=title)


NOVELTY_WEIGHT = 4.0  # in judge points, on the offline judge's 1-9 scale
REWARD = f"the judge's score + {NOVELTY_WEIGHT:g} x novelty (its words no other story for the title uses)"


def word_ngrams(text, n=1):
    words = re.findall(r"\w+", text.lower())
    return set(zip(*(words[i:] for i in range(n))))


def novelty(responses, n=1):
    """For each response: 1 - max over the other responses of the share of its distinct words (or
    word n-grams) that the other one also has. 1.0 when there is no other response or the response
    has no word."""
    grams = [word_ngrams(r, n) for r in responses]
    return [1.0 - max((len(g & h) / len(g) for j, h in enumerate(grams) if j != i and g), default=0.0)
            for i, g in enumerate(grams)]


def group_reward(example, responses, judge):
    """The N stories for one title: the judge's scores (one batch) + NOVELTY_WEIGHT * novelty."""
    scores = score_batch(judge, [example["prompt"]] * len(responses), responses)
    if len(responses) < 2:
        return scores
    return [s + NOVELTY_WEIGHT * v for s, v in zip(scores, novelty(responses))]


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation with several stories per title: the judge's score (the reward less its novelty
    term: the judge is not run again) and the novelty apart. One story: its reward is the judge's."""
    if len(responses) < 2:
        return {}
    v = novelty(responses)
    return {"judge": sum(r - NOVELTY_WEIGHT * x for r, x in zip(rewards, v)) / len(rewards),
            "novelty": sum(v) / len(v)}
