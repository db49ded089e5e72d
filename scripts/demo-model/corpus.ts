// A small English corpus, written for this project, from which the demo tokenizer learns its merges.
// It only has to make the vocabulary look like English; its content carries no meaning for the model.
export const DEMO_CORPUS = `
The quick brown fox jumps over the lazy dog. The dog sleeps in the sun, and the fox runs into the forest.
Hello! How are you today? I am fine, thank you. What would you like to know about the weather?
It is a bright morning in the city. People walk to work, children go to school, and the shops open their doors.
A small team builds a service that answers questions. They write tests first, then the code, then the notes.
The model reads a prompt, thinks for a moment, and writes an answer one word at a time.
You are a helpful assistant. Answer the question clearly and briefly. If you do not know, say so.
The user asks about the history of the river. The assistant explains that the river has flowed for thousands of years.
Water, wind and light shape the land. Mountains rise slowly and wear away even more slowly.
In the garden there are roses, tulips and a tall green tree. Birds sing in the branches every evening.
One, two, three, four, five, six, seven, eight, nine, ten. Numbers like 42, 100 and 2024 appear in many texts.
She opened the book and began to read the first chapter. The story was about a ship that sailed to the north.
The engineer checks the logs, finds the error, and fixes the bug before the release goes out to everyone.
Good questions lead to good answers. Clear words make clear thoughts. Simple tools make hard work easier.
The train leaves the station at nine in the morning and arrives in the capital before noon.
Cooking is a kind of chemistry: heat, time and salt change the taste of almost everything.
When the rain stops, the streets shine and the air smells fresh. Everyone comes outside again.
The teacher said that learning is not about remembering facts but about understanding how things work.
We can compare two answers side by side and choose the one that is more helpful and more honest.
The library is quiet. Students read, write and think. The clock on the wall ticks softly.
The sea was calm that night, and the stars were reflected on the water like a second sky.
Please summarize the following text in one sentence. Then list three key points and one open question.
Thank you for your help! You are welcome. Have a nice day, and see you again soon.
`;
