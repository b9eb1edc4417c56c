"""Class names as people write them: how often matching finds the node a person means.

Paraphrase sets written for this benchmark (each name with the WordNet synset a person writing
it means; a few names accept either of two nodes) are matched as tasks, one task per set, on
two SDAGs:

* ``world``: the offline benchmark world's SDAG (its 20 synsets and their ancestors, the nodes
  of ``SemanticDAG.from_wordnet(make_world().reference)``);
* ``imagenet``: the hypernym closure of the 1000 ImageNet-1k synsets and the sets' synsets.

Each node carries one tiny image (matching reads texts only; every node is a candidate). Three
matching rules are compared:

* ``paper``: the paper's literal rule, mutual best match on cosine similarity (name_bonus=0);
* ``old``: the rule before dictionary forms: a bonus of 0.25 where the class name is a node
  lemma as written (case and separators aside), one round of mutual best match;
* ``new``: :func:`skmll.selection.match_classes` on WordNet dictionary forms (the classifier's
  default), with the class name embedded as written or in its dictionary form.

Sets marked ``dev`` were used to choose settings and are reported apart from the others. How
the choices went, so that the figures can be read for what they are:

1. On the dev sets, embedding names in dictionary form matched the same names as embedding
   them as written (it ranked the intended node first for two more names, "Sandals" and
   "Sea-Lions"), and was chosen.
2. The sets now marked ``seen`` were then run as held-out sets, with step 2 of
   :func:`~skmll.selection.match_classes` then repeating mutual best match on the classes and
   nodes left: it turned unmatched names into wrong nodes ("Slacks" -> garment.n.01). A second
   rule (each class takes its best node unless a closer class asks for it) matched "volcano"
   to entity.n.01 among digit names (tests/test_classifier.py). The dev sets could not tell
   these rules apart; step 2 became the paper's test against every class of the task.
3. The ``held-out`` sets were written after that and run once: dictionary forms embedded lost
   a name there ("Chelsea Boots") and two in the ``seen`` sets, with no dev name gained, so
   the classifier embeds names as written (marked ``*``). This last choice saw the held-out
   sets: they are no longer untouched for it.

For each rule the script prints the fraction of names matched to an intended node, left
unmatched, and matched to another node (wrong), and with ``--show-errors`` the names each rule
misses.

With ``--classify``, the world's fashion classes written as in the sets ``world-everyday`` and
``world-shop-labels`` are classified by ``MLLZeroShotClassifier`` with the nodes found by the
paper's matching, by the new matching, and with the nodes given by hand (``nodes=``); ConSE
serves unmatched classes.

Usage::

    python benchmarks/bench_name_matching.py [--show-errors] [--classify] [--fashion-test 1000]
"""

import argparse
import time

import numpy as np

from skmll.datasets import load_class_table
from skmll.selection import (default_text_encoder, dictionary_form, embed_texts,
                             exact_name_matches, match_classes, mutual_best_match)
from skmll.semantic_graph import SemanticDAG, load_wordnet, synset_for

TEMPLATE = "Name: {}"

# (set name, SDAG, role): [(class name, intended synset or synsets), ...]
PARAPHRASE_SETS = {
    ("world-plurals", "world", "dev"): [
        ("T-Shirts", "jersey.n.03"), ("Trousers", "trouser.n.01"),
        ("Pullovers", "pullover.n.01"), ("Dresses", "dress.n.01"), ("Coats", "coat.n.01"),
        ("Sandals", "sandal.n.01"), ("Shirts", "shirt.n.01"), ("Sneakers", "gym_shoe.n.01"),
        ("Bags", "bag.n.04"), ("Ankle-Boots", "boot.n.01")],
    ("world-digits", "world", "dev"): [
        ("Zeroes", "zero.n.02"), ("Ones", "one.n.01"), ("Twos", "two.n.01"),
        ("Threes", "three.n.01"), ("Fours", "four.n.01"), ("Fives", "five.n.01"),
        ("Sixes", "six.n.01"), ("Sevens", "seven.n.01"), ("Eights", "eight.n.01"),
        ("Nines", "nine.n.01")],
    ("imagenet-plurals", "imagenet", "dev"): [
        ("Goldfish", "goldfish.n.01"), ("Tigers", "tiger.n.02"), ("Bananas", "banana.n.02"),
        ("Umbrellas", "umbrella.n.01"), ("Violins", "violin.n.01"), ("Lemons", "lemon.n.01"),
        ("Mushrooms", "mushroom.n.05"), ("Pineapples", "pineapple.n.02"),
        ("Strawberries", "strawberry.n.01"), ("Volcanoes", "volcano.n.02"),
        ("Zebras", "zebra.n.01"), ("Jellyfish", "jellyfish.n.02")],
    ("imagenet-multiword", "imagenet", "dev"): [
        ("Golden-Retrievers", "golden_retriever.n.01"), ("Fire_Engines", "fire_engine.n.01"),
        ("Polar Bears", "ice_bear.n.01"), ("Hot-Dogs", "hotdog.n.02"),
        ("Tennis Balls", "tennis_ball.n.01"), ("Cowboy-Hats", "cowboy_hat.n.01"),
        ("Traffic_Lights", "traffic_light.n.01"), ("Sea-Lions", "sea_lion.n.01"),
        ("Grand Pianos", "grand_piano.n.01"), ("Space-Shuttle", "space_shuttle.n.01"),
        ("Ice-Cream", "ice_cream.n.01"), ("Guinea Pigs", "guinea_pig.n.02")],
    ("imagenet-regional", "imagenet", "dev"): [
        ("Aeroplanes", "airplane.n.01"), ("Lorry", "truck.n.01"), ("Dustbins", "ashcan.n.01"),
        ("Mobile Phones", "cellular_telephone.n.01"), ("Nappies", "diaper.n.01"),
        ("Petrol Pump", "gas_pump.n.01"), ("Bin Lorry", "garbage_truck.n.01"),
        ("Railway Carriage", "passenger_car.n.01"), ("Lawnmower", "lawn_mower.n.01"),
        ("Ploughs", "plow.n.01"), ("Grey Whales", "grey_whale.n.01")],
    ("world-everyday", "world", "seen"): [
        ("Tee", "jersey.n.03"), ("Slacks", "trouser.n.01"),
        ("Jumper", ("pullover.n.01", "sweater.n.01")), ("Frock", "dress.n.01"),
        ("Overcoat", "coat.n.01"), ("Flip-Flops", "sandal.n.01"),
        ("Button-down shirt", "shirt.n.01"), ("Trainers", "gym_shoe.n.01"),
        ("Handbag", "bag.n.04"), ("Wellies", "boot.n.01")],
    ("imagenet-synonyms", "imagenet", "seen"): [
        ("Hoodie", "sweatshirt.n.01"), ("Shades", "sunglasses.n.01"),
        ("Fridge", "refrigerator.n.01"), ("Cab", "cab.n.03"), ("Teddy Bear", "teddy.n.01"),
        ("Mug", ("coffee_mug.n.01", "mug.n.04")), ("Bike", "bicycle.n.01"),
        ("Skillet", "frying_pan.n.01"), ("Soda Bottle", "pop_bottle.n.01"),
        ("Semi", "trailer_truck.n.01"), ("Ladybird", "ladybug.n.01"),
        ("Rickshaw", "jinrikisha.n.01")],
    ("imagenet-descriptions", "imagenet", "seen"): [
        ("big cat with black stripes", "tiger.n.02"),
        ("yellow curved fruit", "banana.n.02"),
        ("red vehicle that fights fires", "fire_engine.n.01"),
        ("white bear of the Arctic", "ice_bear.n.01"),
        ("sausage in a bun", "hotdog.n.02"),
        ("flightless bird of Antarctica", ("king_penguin.n.01", "penguin.n.01")),
        ("watch for timing a race", "stopwatch.n.01"),
        ("bag carried on the back", "backpack.n.01"),
        ("vehicle that flies into space", "space_shuttle.n.01"),
        ("striped African horse", "zebra.n.01"),
        ("small orange pet fish", "goldfish.n.01"),
        ("ring-shaped bread roll", "bagel.n.01")],
    ("world-shop-labels", "world", "held-out"): [
        ("Short-sleeve Tees", "jersey.n.03"), ("Chinos", "trouser.n.01"),
        ("Knitwear", ("pullover.n.01", "sweater.n.01")), ("Evening Gowns", "dress.n.01"),
        ("Raincoats", "coat.n.01"), ("Strappy Sandals", "sandal.n.01"),
        ("Dress Shirts", "shirt.n.01"), ("Running Shoes", "gym_shoe.n.01"),
        ("Tote Bags", "bag.n.04"), ("Chelsea Boots", "boot.n.01")],
    ("imagenet-everyday", "imagenet", "held-out"): [
        ("Sports Cars", "sports_car.n.01"), ("Soccer Balls", "soccer_ball.n.01"),
        ("Cheeseburgers", "cheeseburger.n.01"), ("Hummingbirds", "hummingbird.n.01"),
        ("Tabby Cats", "tabby.n.01"), ("Koala Bears", "koala.n.01"),
        ("Red Pandas", "lesser_panda.n.01"), ("Scuba Divers", "scuba_diver.n.01"),
        ("Snowmobiles", "snowmobile.n.01"), ("Ping Pong Balls", "ping-pong_ball.n.01"),
        ("Washing Machines", "washer.n.03"), ("Hairdryer", "hand_blower.n.01")],
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache-dir", default=None,
                        help="cache folder (default: $SKMLL_CACHE_DIR or ~/.cache/skmll)")
    parser.add_argument("--sets", choices=("all", "dev", "seen", "held-out"), default="all")
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--classify", action="store_true",
                        help="also classify the world's fashion test images (slow)")
    parser.add_argument("--fashion-test", type=int, default=1000)
    return parser.parse_args()


def intended(target):
    return (target,) if isinstance(target, str) else target


def text_sdag(synsets, wordnet):
    """The SDAG of ``synsets`` and their ancestors, one 1x1 image per synset."""
    pixel = np.zeros((1, 1, 1), dtype=np.uint8)
    return SemanticDAG.from_wordnet({s: pixel for s in synsets}, wordnet=wordnet,
                                    cache_dir=False)


def build_sdags(wordnet):
    world = [row["synset"] for row in load_class_table()]
    from timm.data import ImageNetInfo

    imagenet = [synset_for(wnid, wordnet).name() for wnid in ImageNetInfo().label_names()]
    wanted = {sdag: [s for (_, where, _), names in PARAPHRASE_SETS.items() if where == sdag
                     for _, target in names for s in intended(target)]
              for sdag in ("world", "imagenet")}
    # An intended node must exist: the world SDAG holds them all as ancestors or leaves.
    missing = set(wanted["world"]) - set(text_sdag(world, wordnet).node_ids)
    if missing:
        raise ValueError(f"world sets name synsets outside the world SDAG: {sorted(missing)}")
    return {"world": text_sdag(world, wordnet),
            "imagenet": text_sdag(sorted(set(imagenet) | set(wanted["imagenet"])), wordnet)}


def rules(names, texts, cosine, cosine_dictionary):
    """Node index per class under each rule."""
    verbatim = exact_name_matches(names, texts, morphology=None)
    forms = exact_name_matches(names, texts)
    return {
        "paper (name_bonus=0)": match_classes(cosine, name_bonus=0),
        "old (verbatim bonus, one round)": mutual_best_match(cosine + 0.25 * verbatim)[0],
        "new, names embedded as written*": match_classes(cosine, forms),
        "new, dictionary forms embedded": match_classes(cosine_dictionary, forms),
    }


def score(nodes, targets, node_ids):
    right = np.array([n >= 0 and node_ids[n] in intended(t) for n, t in zip(nodes, targets)])
    unmatched = nodes < 0
    return right, unmatched, ~right & ~unmatched


def main():
    args = parse_args()
    begin = time.perf_counter()
    wordnet = load_wordnet()
    encoder = default_text_encoder()
    sdags = build_sdags(wordnet)
    node_vectors = {key: embed_texts(encoder, sdag.texts, cache_dir=args.cache_dir, verbose=1)
                    for key, sdag in sdags.items()}
    print("SDAG nodes: " + ", ".join(f"{k} {s.n_nodes}" for k, s in sdags.items())
          + f" ({time.perf_counter() - begin:.0f} s to build and embed)")

    totals = {}
    for (set_name, where, role), pairs in PARAPHRASE_SETS.items():
        if args.sets not in ("all", role):
            continue
        names, targets = [n for n, _ in pairs], [t for _, t in pairs]
        sdag, nodes = sdags[where], node_vectors[where]
        as_written = embed_texts(encoder, [TEMPLATE.format(n) for n in names]) @ nodes.T
        dictionary = embed_texts(
            encoder, [TEMPLATE.format(dictionary_form(n)) for n in names]) @ nodes.T
        print(f"\n{set_name} ({role}, {where} SDAG, {len(names)} names)")
        print(f"  {'rule':<34} {'intended':>9} {'unmatched':>10} {'wrong':>6}")
        for rule, matched in rules(names, sdag.texts, as_written, dictionary).items():
            right, unmatched, wrong = score(matched, targets, sdag.node_ids)
            counts = totals.setdefault((role, rule), np.zeros(4, int))
            counts += [right.sum(), unmatched.sum(), wrong.sum(), len(names)]
            print(f"  {rule:<34} {right.mean():>9.3f} {unmatched.mean():>10.3f} "
                  f"{wrong.mean():>6.3f}")
            if args.show_errors:
                for i in np.flatnonzero(~right):
                    got = "unmatched" if matched[i] < 0 else sdag.node_ids[matched[i]]
                    print(f"      {names[i]!r}: {got} (intended {targets[i]})")

    print("\nAll names, by role")
    print(f"  {'role':<9} {'rule':<34} {'names':>5} {'intended':>9} {'unmatched':>10} "
          f"{'wrong':>6}")
    for (role, rule), (right, unmatched, wrong, n) in sorted(totals.items(), key=by_role):
        print(f"  {role:<9} {rule:<34} {n:>5} {right / n:>9.3f} {unmatched / n:>10.3f} "
              f"{wrong / n:>6.3f}")
    if args.classify:
        classify(args)
    print(f"\ntotal {time.perf_counter() - begin:.0f} s")


def by_role(item):
    (role, _), _ = item
    return ["dev", "seen", "held-out"].index(role)


def classify(args):
    """Accuracy on the world's fashion test images: nodes by matching vs nodes by hand."""
    from skmll import ConSE, MLLZeroShotClassifier, ModelLabeler
    from skmll.datasets import build_world_hub, make_world
    from skmll.hub import MemoizedExpert, ModelHub, as_image_batch
    from skmll.metrics import zero_shot_report

    world = make_world(fashion_test=args.fashion_test)
    hub = ModelHub([MemoizedExpert(e, cache_dir=args.cache_dir)
                    for e in build_world_hub(world, cache_dir=args.cache_dir, verbose=0)])
    sdag = SemanticDAG.from_wordnet(world.reference, cache_dir=args.cache_dir)
    labeler = ModelLabeler(sdag, cache_dir=args.cache_dir, verbose=0).fit(hub)
    conse = ConSE.from_imagenet(hub["efficientnet-lite0"])
    images, labels, _, synsets = world.task(list(range(10)))
    images = as_image_batch(images)
    for key in (("world-everyday", "world", "seen"), ("world-shop-labels", "world", "held-out")):
        names = [n for n, _ in PARAPHRASE_SETS[key]]
        by_hand = [intended(t)[0] for _, t in PARAPHRASE_SETS[key]]
        if by_hand != synsets:
            raise ValueError(f"{key[0]} must list the fashion classes in world order")
        truth = np.array(names, dtype=object)[labels]
        print(f"\nClassification, fashion classes as in {key[0]} ({key[2]}, {len(truth)} "
              f"test images)")
        for label, nodes, name_bonus in (("paper matching (name_bonus=0)", None, 0.0),
                                         ("new matching", None, 0.25),
                                         ("nodes given by hand", by_hand, 0.25)):
            clf = MLLZeroShotClassifier(names, labeler, k=2, general_model=conse, nodes=nodes,
                                        name_bonus=name_bonus, cache_dir=args.cache_dir).fit()
            report = zero_shot_report(truth, clf.predict(images), clf.covered_classes_,
                                      classes=names)
            found = sum(clf.matched_nodes_[n] is not None and clf.matched_nodes_[n][0] == s
                        for n, s in zip(names, by_hand))
            print(f"  {label:<30} nodes as by hand {found}/{len(names)}  "
                  + "  ".join(f"{k} {v:.3f}" for k, v in report.items()))


if __name__ == "__main__":
    main()
