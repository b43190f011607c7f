document.getElementById("console")!.textContent = "console";
