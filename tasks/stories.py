"""
Stories: creative writing from a title (the "Stories" part of UltraMathStories). The titles below
are this project's own; a hash of each title puts ~20% of them in the test split.

Reward of a story (group_reward scores a title's stories in one batch):
    judge score (a reward model plugged in through tasks.judge)
    + SURPRISE_WEIGHT * surprise,   surprise = S                            if S <= NOISE
                                             = NOISE - NOISE_SLOPE (S - NOISE) above it,
where S is the policy LM's own surprisal of the story: the mean -log p of its tokens at
temperature 1, in nats per token (recorded by generation as it samples; tasks.judge.surprisal
computes it for any text).
Why: the paper's AD learns high temperatures for stories, so its reward model (ArmoRM-8B) must
prefer what higher temperatures bring there, variety and originality. The offline judge
(SmolLM2-135M rating stories 1-9) does not: its mean scores hardly change with the temperature.
S measures how far a story is from the one the model would write anyway (its greedy story: S ~0.8
nats), and rises with the temperature (~1.6 at 0.8); but past NOISE the model's own stories break
down (invented words, other scripts, replacement characters), so there the reward falls steeply
and noise cannot win. The reward depends on the story alone, never on the other samples (a reward
that compares a story with its siblings changes with the temperatures they were drawn at, so it
moves as the head learns). The constants were chosen on 24 training titles x 4 stories at each
temperature (the README): the reward rises from 0 to 0.8 and falls at 1.0, where fluent and
broken stories mix. Set SURPRISE_WEIGHT = 0 for the judge alone (the paper's reward).
"""
from tasks.judge import score_batch
from tasks.data import is_test, subsample

NAME = "stories"
CHAT = True
JUDGED = True  # scored by the judge: tasks.rewards batches its calls
EVAL_SAMPLES = 2  # stories per title and method in evaluation: their mean reward is the title's
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


SURPRISE_WEIGHT = 2.0  # judge points per nat, on the offline judge's 1-9 scale
NOISE = 2.5            # nats per token: above it, more and more of the model's stories break down
NOISE_SLOPE = 4.0      # how fast the surprise term falls above NOISE
REWARD = (f"the judge's score + {SURPRISE_WEIGHT:g} x surprise (the LM's surprisal of the story, in nats per "
          f"token, falling above {NOISE:g})")


def surprise(s):
    """The surprise term of the reward, from the surprisal s: rises with s up to NOISE, then falls."""
    return s if s <= NOISE else NOISE - NOISE_SLOPE * (s - NOISE)


def group_reward(example, responses, judge):
    """The stories for one title: the judge's scores (one batch) + SURPRISE_WEIGHT * surprise."""
    scores = score_batch(judge, [example["prompt"]] * len(responses), responses)
    if SURPRISE_WEIGHT == 0:
        return scores
    if not hasattr(judge, "surprisal"):
        raise RuntimeError("the story reward needs the LM's surprisal of a story: pass "
                           "judge=tasks.judge.load(...) (a Judge), or set stories.SURPRISE_WEIGHT = 0")
    surprisal = judge.surprisal([example["prompt"]] * len(responses), responses)
    return [j + SURPRISE_WEIGHT * surprise(x) for j, x in zip(scores, surprisal)]


def group_metrics(example, responses, rewards, judge=None):
    """Evaluation: the judge's score and the surprisal apart (remembered by the Judge: not run again)."""
    if judge is None or not hasattr(judge, "surprisal"):
        return {}
    surprisal = judge.surprisal([example["prompt"]] * len(responses), responses)
    judged = [r - SURPRISE_WEIGHT * surprise(x) for r, x in zip(rewards, surprisal)]
    return {"judge": sum(judged) / len(judged), "surprisal": sum(surprisal) / len(surprisal)}
