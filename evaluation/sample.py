"""The small hand-written evaluation file shipped as ``data/sample_eval.json``.

Requests, captions and answers are written by hand; prompts are rendered with ``react.render_prompt``
over a deterministic subset of the 24 GPT4Tools tools, so the file is in GPT4Tools' exact
evaluation format. Regenerate with ``python -m efe_langchain.evaluation.sample``.
"""

from __future__ import annotations

import hashlib
import json
import random
from importlib import resources
from pathlib import Path

from efe_langchain.prompts import load_tool_specs, tool_spec
from efe_langchain.react import Step, render_image_turn, render_prompt, render_scratchpad

__all__ = ["build_sample_records", "sample_eval_path", "write_sample"]

# (caption of the uploaded image or None, request, [(tool, [args after the image], observation)],
#  final answer, number of steps already done in the instruction)
# "{img}" is the uploaded image, "{o1}" the first step's output image.
_TASKS = [
    ("a brown dog catching a frisbee in a park.", "What is in this picture?",
     [("Get Photo Description", [], "[output_from_caption_tool]")], "[output_from_caption_tool]", 0),
    ("a woman holding an umbrella on a rainy street.", "What color is the umbrella the woman is holding?",
     [("Answer Question About The Image", ["what color is the umbrella the woman is holding"], "[output_from_vqa_tool]")],
     "[output_from_vqa_tool]", 0),
    ("two dogs on a beach.", "Find the outlines in this picture.",
     [("Edge Detection On Image", [], "{o1}")], "Here is the edge map: {o1}", 0),
    ("a steel bridge over a river at dusk.", "Show me the straight lines in this photo of the bridge.",
     [("Line Detection On Image", [], "{o1}")], "The straight lines are in {o1}", 0),
    ("a cat sitting on a windowsill.", "Give me a soft HED boundary map of this image.",
     [("Hed Detection On Image", [], "{o1}")], "The soft boundary map is {o1}", 0),
    ("a teapot and two cups on a wooden table.", "Turn this photo into a scribble sketch.",
     [("Sketch Detection On Image", [], "{o1}")], "Here is the sketch: {o1}", 0),
    ("a ballet dancer jumping on a stage.", "Extract the human pose from this picture of the dancer.",
     [("Pose Detection On Image", [], "{o1}")], "The pose image is {o1}", 0),
    ("a busy street with cars and tall buildings.", "Estimate the depth of this street scene.",
     [("Predict Depth On Image", [], "{o1}")], "Here is the depth map: {o1}", 0),
    ("a marble statue of a horse.", "Compute the surface normal map of this image.",
     [("Predict Normal Map On Image", [], "{o1}")], "The normal map is {o1}", 0),
    ("a kitchen with a fridge, an oven and a table.", "Segment everything in this picture.",
     [("Segment the Image", [], "{o1}")], "The segmentation is in {o1}", 0),
    ("a hiker with a red backpack on a mountain trail.", "Where is the red backpack in this photo?",
     [("Detect the Give Object", ["red backpack"], "{o1}")], "I marked the red backpack in {o1}", 0),
    ("a cat sleeping on a grey sofa.", "Segment the cat sleeping on the sofa.",
     [("Segment the given object", ["cat"], "{o1}")], "The cat's mask is in {o1}", 0),
    ("a street with a car parked on the left and a bicycle.", "Remove the car from this photo.",
     [("Remove Something From The Photo", ["car"], "{o1}")], "I removed the car: {o1}", 0),
    ("an apple and a banana in a fruit bowl.", "Replace the apple with an orange.",
     [("Replace Something From The Photo", ["apple", "orange"], "{o1}")], "The apple is now an orange: {o1}", 0),
    ("a lake surrounded by pine trees.", "Make it look like a watercolor painting.",
     [("Instruct Image Using Text", ["make it look like a watercolor painting"], "{o1}")],
     "Here is the watercolor version: {o1}", 0),
    (None, "Generate an image of a lighthouse on a rocky cliff at sunset.",
     [("Generate Image From User Input Text", ["a lighthouse on a rocky cliff at sunset"], "{o1}")],
     "Here is the lighthouse: {o1}", 0),
    ("an edge map of a city skyline.", "Generate a futuristic city from this edge map.",
     [("Generate Image Condition On Canny Image", ["a futuristic city"], "{o1}")], "Here is the city: {o1}", 0),
    ("a line drawing of a room with a window.", "Use these straight lines to generate a cozy living room.",
     [("Generate Image Condition On Line Image", ["a cozy living room"], "{o1}")], "Here is the living room: {o1}", 0),
    ("a soft boundary map of a bird on a branch.", "Generate a colorful parrot from this hed boundary map.",
     [("Generate Image Condition On Soft Hed Boundary Image", ["a colorful parrot"], "{o1}")],
     "Here is the parrot: {o1}", 0),
    ("a rough sketch of a house with a tree.", "Turn this sketch into a realistic cottage in the forest.",
     [("Generate Image Condition On Sketch Image", ["a realistic cottage in the forest"], "{o1}")],
     "Here is the cottage: {o1}", 0),
    ("a pose skeleton of a person raising both arms.", "Generate an astronaut in this pose.",
     [("Generate Image Condition On Pose Image", ["an astronaut"], "{o1}")], "Here is the astronaut: {o1}", 0),
    ("a segmentation map of a beach with sky and sea.", "Generate a tropical island from these segmentations.",
     [("Generate Image Condition On Segmentations", ["a tropical island"], "{o1}")], "Here is the island: {o1}", 0),
    ("a depth map of a narrow alley.", "Generate a medieval street at night conditioned on this depth map.",
     [("Generate Image Condition On Depth", ["a medieval street at night"], "{o1}")], "Here is the street: {o1}", 0),
    ("a normal map of a sculpted face.", "Generate a bronze bust from this normal map.",
     [("Generate Image Condition On Normal Map", ["a bronze bust"], "{o1}")], "Here is the bust: {o1}", 0),
    ("a man riding a horse on a beach.", "How many horses are in the image?",
     [("Answer Question About The Image", ["how many horses are in the image"], "[output_from_vqa_tool]")],
     "[output_from_vqa_tool]", 0),
    ("a table with a laptop, a mug and a notebook.", "Detect the mug in this picture.",
     [("Detect the Give Object", ["mug"], "{o1}")], "The mug is boxed in {o1}", 0),
    # multi-step chains, whole chain in the output
    (None, "Draw a red sports car and then detect the edges of the picture.",
     [("Generate Image From User Input Text", ["a red sports car"], "{o1}"),
      ("Edge Detection On Image", ["<o1>"], "{o2}")], "Here are the edges of the car: {o2}", 0),
    ("a castle on a hill.", "Detect the edges of this image and then generate a castle made of ice from them.",
     [("Edge Detection On Image", [], "{o1}"),
      ("Generate Image Condition On Canny Image", ["<o1>", "a castle made of ice"], "{o2}")],
     "Here is the ice castle: {o2}", 0),
    ("a village in a valley.", "Predict the depth of this image and use it to generate a snowy mountain village.",
     [("Predict Depth On Image", [], "{o1}"),
      ("Generate Image Condition On Depth", ["<o1>", "a snowy mountain village"], "{o2}")],
     "Here is the snowy village: {o2}", 0),
    ("a man doing yoga on a mat.", "Get the pose of the person and generate a robot in the same pose.",
     [("Pose Detection On Image", [], "{o1}"),
      ("Generate Image Condition On Pose Image", ["<o1>", "a robot"], "{o2}")], "Here is the robot: {o2}", 0),
    ("a dog and a cat on a lawn.", "Remove the dog and then tell me what is left in the picture.",
     [("Remove Something From The Photo", ["dog"], "{o1}"),
      ("Get Photo Description", ["<o1>"], "[output_from_caption_tool]")],
     "After removing the dog: [output_from_caption_tool]", 0),
    ("a city park in summer.", "Replace the trees with cherry blossoms and then make it look like an oil painting.",
     [("Replace Something From The Photo", ["trees", "cherry blossoms"], "{o1}"),
      ("Instruct Image Using Text", ["<o1>", "make it look like an oil painting"], "{o2}")],
     "Here is the oil painting: {o2}", 0),
    # chains whose first step is already in the instruction (finished_previously)
    ("a farmhouse next to a field.", "Predict the depth of this image and use it to generate a house on Mars.",
     [("Predict Depth On Image", [], "{o1}"),
      ("Generate Image Condition On Depth", ["<o1>", "a house on Mars"], "{o2}")],
     "Here is the house on Mars: {o2}", 1),
    ("a girl dancing in a meadow.", "Find the pose of the girl and then generate a knight in armor in that pose.",
     [("Pose Detection On Image", [], "{o1}"),
      ("Generate Image Condition On Pose Image", ["<o1>", "a knight in armor"], "{o2}")],
     "Here is the knight: {o2}", 1),
    (None, "Generate a picture of a panda eating bamboo and tell me what you see in it.",
     [("Generate Image From User Input Text", ["a panda eating bamboo"], "{o1}"),
      ("Get Photo Description", ["<o1>"], "[output_from_caption_tool]")],
     "[output_from_caption_tool]", 1),
    # no tool needed
    ("a bowl of ramen.", "What is the capital of Australia?", [], "The capital of Australia is Canberra.", 0),
    ("a red car in the snow.", "Thanks, that looks great!", [], "You are welcome! Let me know if you need anything else.", 0),
    (None, "Can you explain what an edge detector does?", [],
     "An edge detector finds places in an image where the brightness changes sharply, such as object outlines.", 0),
    (None, "Write a haiku about autumn leaves.", [],
     "Red leaves drift and fall, the wind carries them away, autumn says goodbye.", 0),
    (None, "How many days are there in a leap year?", [], "A leap year has 366 days.", 0),
    (None, "Hello! Who are you?", [], "Hello! I am GPT4Tools, I can answer questions and work with images using tools.", 0),
]


def _name(seed: str) -> str:
    return "image/" + hashlib.sha1(seed.encode()).hexdigest()[:8] + ".png"


def _tool_subset(needed: list[str], rng: random.Random) -> list:
    specs = list(load_tool_specs())
    others = [s for s in specs if s.name not in needed]
    chosen = [tool_spec(n) for n in needed] + rng.sample(others, rng.randint(3, 7))
    rng.shuffle(chosen)
    return chosen


def build_sample_records() -> list[dict]:
    rng = random.Random(4)
    records = []
    for rid, (caption, request, steps, answer, done) in enumerate(_TASKS, start=1):
        image = _name(f"upload-{rid}") if caption else None
        outputs = {f"o{i}": _name(f"out-{rid}-{i}") for i in (1, 2)}
        history = render_image_turn(image, caption) if image else ""

        def fill(text: str) -> str:
            text = text.replace("{img}", image or "")
            for k, v in outputs.items():
                text = text.replace("{" + k + "}", v).replace("<" + k + ">", v)
            return text

        actions, action_inputs, rendered = [], [], []
        for tool, extra, obs in steps:
            spec = tool_spec(tool)
            args = [fill(a) for a in extra]
            if spec.takes_image and not (args and args[0].endswith(".png")):
                args = [image] + args
            actions.append(tool)
            action_inputs.append(args)
            rendered.append((tool, ", ".join(args), fill(obs)))
        scratch = render_scratchpad([Step(*s) for s in rendered[:done]])
        tools = _tool_subset(actions, rng) if actions else _tool_subset([], rng)
        instruction = render_prompt(tools, chat_history=history, input=request, scratchpad=scratch)
        output = "".join(
            f"Thought: Do I need to use a tool? Yes\nAction: {t}\nAction Input: {a}\nObservation:\n{o}\n"
            for t, a, o in rendered[done:]
        ) + f"Thought: Do I need to use a tool? No\nAI: {fill(answer)}\n"
        records.append({
            "id": rid,
            "instruction": instruction,
            "input": "",
            "output": output,
            "Action": actions[done:],
            "Action Input": action_inputs[done:],
            "user_input": request,
            "caption": caption or "",
            "filename": image or "",
            "finished_previously": bool(done),
        })
    return records


def sample_eval_path() -> Path:
    """The shipped sample file (installed as package data)."""
    return Path(str(resources.files("efe_langchain.evaluation").joinpath("data/sample_eval.json")))


def write_sample(path: str | Path | None = None) -> Path:
    path = Path(path) if path else Path(__file__).parent / "data" / "sample_eval.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(build_sample_records(), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    print(write_sample())
